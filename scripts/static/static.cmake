# Static build (scripts/build-static.sh): link -static with musl against the libraries that
# script built from Debian's source packages. Each PGENTRY_STATIC_<LIB> is a prefix holding
# include/, lib/, debian-version and, if the script applied patches of ours, patches. The
# targets carry the names the dynamic build's find_package/pkg_check_modules give, so the rest
# of CMakeLists.txt is the same for both.

foreach(dep OPENSSL LIBPQ CURL LIBEV)
  set(PGENTRY_STATIC_${dep} "" CACHE PATH "Prefix of the static ${dep} (scripts/build-static.sh)")
  set(dir "${PGENTRY_STATIC_${dep}}")
  if(NOT dir OR NOT EXISTS "${dir}/debian-version")
    message(FATAL_ERROR "PGENTRY_STATIC needs -DPGENTRY_STATIC_${dep}=<prefix>: run scripts/build-static.sh")
  endif()
  file(STRINGS "${dir}/debian-version" PGENTRY_STATIC_${dep}_VERSION LIMIT_COUNT 1)
  # Our patches (scripts/static/patches/<package>/<name>.patch) follow as +<name>.
  if(EXISTS "${dir}/patches")
    file(STRINGS "${dir}/patches" patches)
    foreach(patch IN LISTS patches)
      string(APPEND PGENTRY_STATIC_${dep}_VERSION "+${patch}")
    endforeach()
  endif()
endforeach()

if(NOT CMAKE_C_COMPILER MATCHES "musl")
  message(FATAL_ERROR "PGENTRY_STATIC needs -DCMAKE_C_COMPILER=musl-gcc (got ${CMAKE_C_COMPILER})")
endif()
# Criterion and the bench drivers are built against glibc: not part of the static build.
set(PGENTRY_TESTS OFF)

# x86_64, or aarch64 for the cross build (scripts/build-static.sh --arch aarch64, with the
# musl-gcc wrapper that script built for aarch64).
set(PGENTRY_STATIC_ARCH "x86_64" CACHE STRING "Target architecture of the static build")
# musl-gcc has no kernel headers on its path; Debian's come after musl's own.
# (SHELL: keeps CMake from merging the repeated -idirafter.)
if(PGENTRY_STATIC_ARCH STREQUAL "x86_64")
  add_compile_options("SHELL:-idirafter /usr/include" "SHELL:-idirafter /usr/include/x86_64-linux-gnu")
  set(arch_info "")
elseif(PGENTRY_STATIC_ARCH STREQUAL "aarch64")
  # linux-libc-dev-arm64-cross's headers.
  add_compile_options("SHELL:-idirafter /usr/aarch64-linux-gnu/include")
  set(arch_info " aarch64")
else()
  message(FATAL_ERROR "PGENTRY_STATIC_ARCH must be x86_64 or aarch64 (got ${PGENTRY_STATIC_ARCH})")
endif()
add_compile_options("SHELL:-include ${CMAKE_CURRENT_LIST_DIR}/musl_compat.h")
add_link_options(-static)

find_package(Threads REQUIRED)

add_library(OpenSSL::Crypto STATIC IMPORTED)
set_target_properties(OpenSSL::Crypto PROPERTIES
  IMPORTED_LOCATION "${PGENTRY_STATIC_OPENSSL}/lib/libcrypto.a"
  INTERFACE_INCLUDE_DIRECTORIES "${PGENTRY_STATIC_OPENSSL}/include"
  INTERFACE_LINK_LIBRARIES Threads::Threads)
add_library(OpenSSL::SSL STATIC IMPORTED)
set_target_properties(OpenSSL::SSL PROPERTIES
  IMPORTED_LOCATION "${PGENTRY_STATIC_OPENSSL}/lib/libssl.a"
  INTERFACE_LINK_LIBRARIES OpenSSL::Crypto)

# One imported target per archive, each naming what it needs, so CMake orders the link line
# (libcurl.a before libssl.a, libpq.a before libpgcommon and libpgport).
function(pgentry_static_archive name path)
  add_library(${name} STATIC IMPORTED)
  set_target_properties(${name} PROPERTIES IMPORTED_LOCATION "${path}" INTERFACE_LINK_LIBRARIES "${ARGN}")
endfunction()
pgentry_static_archive(pgentry_static_pgport "${PGENTRY_STATIC_LIBPQ}/lib/libpgport_shlib.a")
pgentry_static_archive(pgentry_static_pgcommon "${PGENTRY_STATIC_LIBPQ}/lib/libpgcommon_shlib.a"
                       pgentry_static_pgport OpenSSL::Crypto)
pgentry_static_archive(pgentry_static_pq "${PGENTRY_STATIC_LIBPQ}/lib/libpq.a"
                       pgentry_static_pgcommon pgentry_static_pgport OpenSSL::SSL)
pgentry_static_archive(pgentry_static_curl "${PGENTRY_STATIC_CURL}/lib/libcurl.a" OpenSSL::SSL
                       Threads::Threads)

add_library(PkgConfig::LIBPQ INTERFACE IMPORTED)
set_target_properties(PkgConfig::LIBPQ PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${PGENTRY_STATIC_LIBPQ}/include"
  INTERFACE_LINK_LIBRARIES pgentry_static_pq)

add_library(PkgConfig::LIBCURL INTERFACE IMPORTED)
set_target_properties(PkgConfig::LIBCURL PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${PGENTRY_STATIC_CURL}/include"
  INTERFACE_LINK_LIBRARIES pgentry_static_curl)

set(LIBEV_INCLUDE_DIR "${PGENTRY_STATIC_LIBEV}/include" CACHE PATH "" FORCE)
# A system directory, as /usr/include is for Debian's ev.h: its macros trip -Wstrict-aliasing.
include_directories(SYSTEM "${PGENTRY_STATIC_LIBEV}/include")
set(LIBEV_LIBRARY "${PGENTRY_STATIC_LIBEV}/lib/libev.a" CACHE FILEPATH "" FORCE)

# Upstream version plus Debian revision, e.g. libpq 15.18-0+deb12u1. The semicolon is written
# as the C escape \073: a literal one would split the definition as a CMake list.
set(PGENTRY_BUILD_INFO
    "static${arch_info}\\073 libpq ${PGENTRY_STATIC_LIBPQ_VERSION}, OpenSSL ${PGENTRY_STATIC_OPENSSL_VERSION}, libcurl ${PGENTRY_STATIC_CURL_VERSION}, libev ${PGENTRY_STATIC_LIBEV_VERSION}")
message(STATUS "static build: ${PGENTRY_BUILD_INFO}")
