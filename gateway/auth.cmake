# gateway_auth: Cognito access-token verification (src/auth.c, src/auth.h).
# Included from gateway/CMakeLists.txt (include(auth.cmake)); the gateway
# links gateway_auth.
add_library(gateway_auth STATIC ${CMAKE_CURRENT_LIST_DIR}/src/auth.c)
target_include_directories(gateway_auth PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
target_compile_options(gateway_auth PRIVATE ${CRUDDUR_WARNINGS})
target_link_libraries(gateway_auth PUBLIC cjose cruddur_core PkgConfig::OPENSSL PkgConfig::CURL
  PkgConfig::CJSON Threads::Threads m)

cruddur_add_test(auth_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/src/auth_test.c
  LIBS gateway_auth cruddur_core PkgConfig::OPENSSL Threads::Threads)

# Test helper for it_auth: verifies a token read from stdin.
add_executable(auth_check ${CMAKE_CURRENT_LIST_DIR}/src/auth_check.c)
target_compile_options(auth_check PRIVATE ${CRUDDUR_WARNINGS})
target_link_libraries(auth_check PRIVATE gateway_auth)

add_test(NAME it_auth COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tests/integration/test_auth.py)
set_tests_properties(it_auth PROPERTIES TIMEOUT 120 LABELS integration
  ENVIRONMENT "CRUDDUR_BUILD_DIR=${PROJECT_BINARY_DIR};CRUDDUR_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
