# sg_bpf_object(NAME SOURCE [DEPENDS headers...])
#   Compiles SOURCE with clang -target bpf into NAME.bpf.o, generates the libbpf
#   skeleton NAME.skel.h with bpftool, and exposes it as INTERFACE target
#   bpf_NAME so that C++ targets embed the object by including the skeleton.
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

execute_process(COMMAND uname -m OUTPUT_VARIABLE _sg_arch OUTPUT_STRIP_TRAILING_WHITESPACE)
set(_sg_multiarch_include /usr/include/${_sg_arch}-linux-gnu)

set(SG_BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf-gen)
file(MAKE_DIRECTORY ${SG_BPF_GEN_DIR})

function(sg_bpf_object NAME SOURCE)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(_obj ${SG_BPF_GEN_DIR}/${NAME}.bpf.o)
  set(_skel ${SG_BPF_GEN_DIR}/${NAME}.skel.h)
  get_filename_component(_src ${SOURCE} ABSOLUTE)
  file(GLOB _bpf_headers ${CMAKE_SOURCE_DIR}/bpf/lib/*.h)
  add_custom_command(
    OUTPUT ${_obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -Wall -Wextra -Werror
            -D__TARGET_ARCH_x86
            -I${CMAKE_SOURCE_DIR}/include -I${CMAKE_SOURCE_DIR}/bpf
            -idirafter ${_sg_multiarch_include}
            -c ${_src} -o ${_obj}
    DEPENDS ${_src} ${_bpf_headers} ${CMAKE_SOURCE_DIR}/include/smtpgov/abi.h ${ARG_DEPENDS}
    COMMENT "BPF ${NAME}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${_skel}
    COMMAND ${BPFTOOL} gen skeleton ${_obj} name ${NAME}_bpf > ${_skel}
    DEPENDS ${_obj}
    COMMENT "BPF skeleton ${NAME}.skel.h"
    VERBATIM)
  add_custom_target(${NAME}_bpf_gen DEPENDS ${_skel})
  add_library(bpf_${NAME} INTERFACE)
  add_dependencies(bpf_${NAME} ${NAME}_bpf_gen)
  target_include_directories(bpf_${NAME} INTERFACE ${SG_BPF_GEN_DIR})
  target_link_libraries(bpf_${NAME} INTERFACE PkgConfig::LIBBPF smtpgov_abi)
  set_property(GLOBAL APPEND PROPERTY SG_BPF_OBJECTS ${_obj})
endfunction()
