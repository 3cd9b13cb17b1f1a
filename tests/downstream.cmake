# Installs salient into a temporary prefix and builds a tiny downstream project that uses
# find_package(salient CONFIG REQUIRED) and links salient::salient, then runs it.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "failed: ${ARGV}\n${out}\n${err}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/salient -DSALIENT_BUILD_TESTS=OFF
    -DSALIENT_BUILD_EXAMPLES=OFF -DSALIENT_BUILD_BENCH=OFF -DSALIENT_BUILD_PYTHON=OFF -DCMAKE_INSTALL_PREFIX=${prefix})
run(${CMAKE_COMMAND} --install ${WORK_DIR}/salient)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/downstream -B ${WORK_DIR}/app -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app)
run(${WORK_DIR}/app/downstream_app)
message(STATUS "downstream project built and ran against ${prefix}")
