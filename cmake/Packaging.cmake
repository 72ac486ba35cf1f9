# Install rules and the Debian package (CPack DEB): `cpack -G DEB` in the build directory
# writes smtpgov_<version>_amd64.deb.
include(GNUInstallDirs)

# Binaries: installed when their targets exist in this tree.
foreach(_sg_bin smtpgovd smtpgovctl smtpgov-flood)
  if(NOT TARGET ${_sg_bin})
    message(WARNING "Packaging: target ${_sg_bin} is not defined; the package will not contain it")
  endif()
endforeach()
if(TARGET smtpgovd)
  install(TARGETS smtpgovd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
endif()
if(TARGET smtpgovctl)
  install(TARGETS smtpgovctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES ${CMAKE_BINARY_DIR}/share/man/man8/smtpgovctl.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
  install(FILES ${CMAKE_BINARY_DIR}/share/bash-completion/completions/smtpgovctl
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
endif()
if(TARGET smtpgov-flood)
  install(TARGETS smtpgov-flood RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(_sg_deploy ${PROJECT_SOURCE_DIR}/deploy)
# systemd looks for units shipped by packages in /lib/systemd/system on Debian 12.
install(FILES ${_sg_deploy}/systemd/smtpgovd.service DESTINATION /lib/systemd/system)
install(FILES ${_sg_deploy}/systemd/smtpgov.tmpfiles DESTINATION lib/tmpfiles.d RENAME smtpgov.conf)
# smtpgovd.json names policy.json as the policy applied at first start: no VMs, default
# limits for every source, until operators register VMs (example in the doc directory).
install(FILES ${_sg_deploy}/config/smtpgovd.json ${_sg_deploy}/config/policy.json DESTINATION /etc/smtpgov
        PERMISSIONS OWNER_READ OWNER_WRITE)
install(FILES ${_sg_deploy}/config/policy.example.json DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${_sg_deploy}/prometheus/prometheus.yml ${_sg_deploy}/prometheus/smtpgov.rules.yml
              ${_sg_deploy}/grafana/smtpgov.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# Maintainer scripts and conffiles.
set(_sg_debian ${CMAKE_BINARY_DIR}/debian)
file(MAKE_DIRECTORY ${_sg_debian})
file(WRITE ${_sg_debian}/conffiles "/etc/smtpgov/smtpgovd.json\n/etc/smtpgov/policy.json\n")
file(WRITE ${_sg_debian}/postinst [=[#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create smtpgov.conf || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
    fi
fi
]=])
file(WRITE ${_sg_debian}/prerm [=[#!/bin/sh
set -e
# Stopping the daemon leaves enforcement in place (pinned BPF maps and links).
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop smtpgovd.service || true
fi
]=])
file(WRITE ${_sg_debian}/postrm [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
    rm -rf /var/lib/smtpgov /etc/smtpgov
fi
]=])
foreach(_sg_script postinst prerm postrm)
  file(CHMOD ${_sg_debian}/${_sg_script} PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
       GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME smtpgov)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "smtpgov")
set(CPACK_PACKAGE_CONTACT "smtpgov maintainers <maintainers@smtpgov.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "outbound-SMTP abuse governor for hypervisor hosts (XDP)")
set(CPACK_PACKAGE_DESCRIPTION
    "smtpgov recognises every new SMTP connection of each VM in XDP, enforces per-VM token buckets and "
    "escalates VMs with a bad reputation through tiers (throttled, steered to a scanning proxy, blocked).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libbpf1 (>= 1:1.1), libxdp1 (>= 1.3), libprometheus-cpp-core1.0, libboost-program-options1.74.0, libsystemd0")
# dpkg-shlibdeps adds the rest (libc6, libstdc++6, libelf1, ...) from the binaries themselves.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_sg_debian}/conffiles ${_sg_debian}/postinst ${_sg_debian}/prerm ${_sg_debian}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
