# Installs the corvo build at CORVO_BINARY_DIR into a fresh prefix, then configures, builds
# and runs the consumer project against that prefix. Any failing step fails the test.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${CORVO_BINARY_DIR} --prefix ${prefix} --config ${BUILD_TYPE})
set(flags "${CXX_FLAGS}")
set(link_flags "")
if(SANITIZE)
  set(flags "${flags} -fsanitize=address,undefined")
  set(link_flags "-fsanitize=address,undefined")
endif()
# The consumer projects build with the corvo build's RelWithDebInfo flags (the sanitizer
# build's -O1 -g1, see the top-level CMakeLists.txt).
set(config_flags "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=${CXX_RELWITHDEBINFO_FLAGS}")
# The documented programs (docs_snippets_test keeps README and docs/ quoting them).
file(GLOB doc_programs ${SOURCE_DIR}/docs/examples/*.cpp)
list(PREPEND doc_programs ${SOURCE_DIR}/samples/hello_scheduler/main.cpp)
# run() passes its arguments through ARGN, which splits on ';': hand the list over with '|'.
string(REPLACE ";" "|" doc_program_list "${doc_programs}")
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${BUILD_TYPE} "${config_flags}"
    "-DCMAKE_CXX_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${link_flags}"
    "-DDOC_PROGRAMS=${doc_program_list}")
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build -j 2)
execute_process(COMMAND ${WORK_DIR}/build/consumer RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "corvo consumer ok")
  message(FATAL_ERROR "consumer did not run correctly (${rc}): ${out}")
endif()
message(STATUS "${out}")
# Components: a Redis-only project (whose binary must not need librdkafka) and one using the
# scheduler with Kafka, each configured with find_package(corvo COMPONENTS ...).
foreach(project IN ITEMS redis_only scheduler_kafka)
  run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR}/${project} -B ${WORK_DIR}/${project}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${BUILD_TYPE} "${config_flags}"
      "-DCMAKE_CXX_FLAGS=${flags}" "-DCMAKE_EXE_LINKER_FLAGS=${link_flags}")
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/${project} -j 2)
  execute_process(COMMAND ${WORK_DIR}/${project}/${project} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 60)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "consumer ok")
    message(FATAL_ERROR "${project} did not run correctly (${rc}): ${out}")
  endif()
  execute_process(COMMAND readelf -d ${WORK_DIR}/${project}/${project}
                  OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "readelf -d ${project} failed (${rc})")
  endif()
  if(project STREQUAL "redis_only" AND dynamic MATCHES "librdkafka")
    message(FATAL_ERROR "the Redis-only program needs librdkafka:\n${dynamic}")
  elseif(project STREQUAL "scheduler_kafka" AND NOT dynamic MATCHES "librdkafka")
    message(FATAL_ERROR "the scheduler+Kafka program does not link librdkafka:\n${dynamic}")
  endif()
  message(STATUS "${project}: ${out}")
endforeach()
# Documented programs under docs/examples/ run to completion here (they end by themselves),
# except those that need a live server this test does not start; those are only compiled:
#   redis_client.cpp   needs a Redis server (README "Redis client in one screen")
#   redis_cluster.cpp  needs a Redis Cluster (docs/redis-cluster.md)
#   pubsub_calls.cpp   needs a Redis server (docs/pubsub.md)
# Run: scheduler_calls.cpp (memory store), runtime_core.cpp (no dependency), kafka_calls.cpp
# (embedded in-process Kafka cluster), health_app.cpp (a user-defined probe). hello_scheduler waits for SIGTERM and is run by
# samples_hello_scheduler_test.
set(compile_only redis_client redis_cluster pubsub_calls)
foreach(source IN LISTS doc_programs)
  get_filename_component(dir ${source} DIRECTORY)
  get_filename_component(name ${source} NAME_WE)
  get_filename_component(parent ${dir} NAME)
  if(parent STREQUAL "examples")
    list(FIND compile_only ${name} index)  # (script mode: no IN_LIST without CMP0057)
    if(NOT index EQUAL -1)
      message(STATUS "${name}: compiled only (needs a live server)")
      continue()
    endif()
    execute_process(COMMAND ${WORK_DIR}/build/doc_${parent}_${name} RESULT_VARIABLE rc
                    OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 60)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "documented program ${source} failed (${rc}):\n${out}")
    endif()
    message(STATUS "${name}: ${out}")
  endif()
endforeach()
