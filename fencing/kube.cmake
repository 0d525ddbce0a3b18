# The Kubernetes API client: libcurl for HTTP and TLS, libyaml for kubeconfig
# files. A separate static library so the pure fencing library never links
# libcurl. Included from fencing/CMakeLists.txt.
find_package(CURL REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)

add_library(leasefence_kube STATIC
  ${CMAKE_CURRENT_LIST_DIR}/src/kube.c
  ${CMAKE_CURRENT_LIST_DIR}/src/kube_events.c
  ${CMAKE_CURRENT_LIST_DIR}/src/kube_util.c
  ${CMAKE_CURRENT_LIST_DIR}/src/kubeconfig.c)
set_target_properties(leasefence_kube PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(leasefence_kube
  PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_LIST_DIR}/include>
         $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
  PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src)
target_compile_definitions(leasefence_kube PRIVATE LF_KUBE_VERSION="${PROJECT_VERSION}")
target_link_libraries(leasefence_kube
  PUBLIC leasefence::fencing CURL::libcurl PkgConfig::YAML PkgConfig::JANSSON Threads::Threads
  PRIVATE lf_warnings)
add_library(leasefence::kube ALIAS leasefence_kube)

# Installed beside the fencing library: controllers written in C read their
# Lease with it (lf_kube_get_lease) to stamp their writes.
install(TARGETS leasefence_kube ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
configure_file(${CMAKE_CURRENT_LIST_DIR}/leasefence-kube.pc.in leasefence-kube.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/leasefence-kube.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
