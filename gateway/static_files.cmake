# The web client's static files (web/), served by the gateway at "/".
# Included by gateway/CMakeLists.txt: include(static_files.cmake)
add_library(gateway_static STATIC ${CMAKE_CURRENT_LIST_DIR}/src/static_files.c)
target_include_directories(gateway_static PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
target_compile_options(gateway_static PRIVATE ${CRUDDUR_WARNINGS})

cruddur_add_test(static_files_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/static_files_test.c
  LIBS gateway_static cruddur_core)
