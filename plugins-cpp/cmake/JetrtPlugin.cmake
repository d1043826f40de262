# jetrt_add_plugin(NAME SOURCES src...): builds a jetrt plugin library
# (lib<NAME>.so) from C, C++ and, where CUDA is enabled, .cu sources, with
# the jetrt plugin headers on its include path and only the two ABI entry
# points (jetrt_plugin_abi_version, jetrt_plugin_list) exported.
#
# From another project:
#   include(/path/to/jetrt/plugins-cpp/cmake/JetrtPlugin.cmake)
#   jetrt_add_plugin(my_plugins SOURCES my_op.cpp)
# then: engine-builder build model.onnx -o model.engine --plugin build/libmy_plugins.so

set(JETRT_PLUGIN_INCLUDE_DIR "${CMAKE_CURRENT_LIST_DIR}/../include" CACHE INTERNAL "jetrt plugin headers")

function(jetrt_add_plugin name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "jetrt_add_plugin(${name}): give its sources with SOURCES")
  endif()
  foreach(src IN LISTS ARG_SOURCES)
    if(src MATCHES "\\.cu$")
      get_property(languages GLOBAL PROPERTY ENABLED_LANGUAGES)
      if(NOT "CUDA" IN_LIST languages)
        message(FATAL_ERROR "jetrt_add_plugin(${name}): ${src} is CUDA, but CUDA is not enabled "
                            "(enable_language(CUDA) needs nvcc)")
      endif()
    endif()
  endforeach()
  add_library(${name} SHARED ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE "${JETRT_PLUGIN_INCLUDE_DIR}")
  set_target_properties(${name} PROPERTIES
    CXX_STANDARD 17
    CXX_STANDARD_REQUIRED ON
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    CUDA_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
endfunction()
