#!/usr/bin/env bash
# run-fuzz.sh NAME BINARY ARTIFACT_DIR [DICT]: runs fuzz target NAME for a bounded time on
# a scratch copy of corpus/NAME (the repository is never written), after replaying
# crashes/NAME (inputs that once failed, kept as regression tests). 20 s; 10 min with
# SMTPGOV_LONG=1; SMTPGOV_FUZZ_SECONDS overrides both. A crash, sanitizer report, leak,
# hang (one input over 10 s) or RSS over 2 GB fails the run and leaves the input in
# ARTIFACT_DIR (reproduce: BINARY FILE).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
name=$1 binary=$2 artifacts=$3 dict=${4:-}
seconds=${SMTPGOV_FUZZ_SECONDS:-$([[ ${SMTPGOV_LONG:-0} == 1 ]] && echo 600 || echo 20)}

# Scratch (corpus copy, the targets' temp files via TMPDIR) on tmpfs when there is one.
work=$(mktemp -d -p "$([[ -w /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")")
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work
cp -r "$here/corpus/$name" "$work/corpus"
mkdir -p "$artifacts"
args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
      -artifact_prefix="$artifacts/")
[[ -z $dict ]] || args+=(-dict="$dict")
dirs=("$work/corpus")  # new inputs go to the first
[[ ! -d $here/crashes/$name ]] || dirs+=("$here/crashes/$name")
"$binary" "${args[@]}" "${dirs[@]}"
