# Every public header compiles on its own (include what you use): a syntax-only compile of
# a file that includes just that header, with the flags of the installed-style include path.
#
# Parsing LibTorch's headers is most of the cost (~9 s a header), so <torch/torch.h> is
# precompiled once and pre-included for the headers that include it anyway, directly or
# through other salient headers (found by following their #include "salient/..." lines): for
# them the pre-include changes nothing but the order, so a header that forgets an include it
# needs still fails. Headers that do not reach <torch/torch.h> compile without it.
file(GLOB_RECURSE headers RELATIVE ${SOURCE_DIR}/include ${SOURCE_DIR}/include/salient/*.hpp)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(base_flags -std=c++20 -D_GLIBCXX_USE_CXX11_ABI=1 -I${SOURCE_DIR}/include -isystem /usr/include/stb -isystem /usr/include/eigen3
          -isystem /usr/include/torch/csrc/api/include)
set(flags ${base_flags} -fsyntax-only)

# Whether each header reaches <torch/torch.h>: its own includes, then those of the salient
# headers it includes, to a fixed point.
foreach(header ${headers})
  string(MAKE_C_IDENTIFIER ${header} id)
  file(STRINGS ${SOURCE_DIR}/include/${header} lines REGEX "^#include [<\"]")
  set(uses_${id} FALSE)
  set(includes_${id})
  foreach(line ${lines})
    if(line MATCHES "^#include <torch/torch.h>")
      set(uses_${id} TRUE)
    elseif(line MATCHES "^#include \"(salient/[^\"]+)\"")
      string(MAKE_C_IDENTIFIER ${CMAKE_MATCH_1} included)
      list(APPEND includes_${id} ${included})
    endif()
  endforeach()
endforeach()
set(changed TRUE)
while(changed)
  set(changed FALSE)
  foreach(header ${headers})
    string(MAKE_C_IDENTIFIER ${header} id)
    if(NOT uses_${id})
      foreach(included ${includes_${id}})
        if(uses_${included})
          set(uses_${id} TRUE)
          set(changed TRUE)
          break()
        endif()
      endforeach()
    endif()
  endforeach()
endwhile()

file(WRITE ${WORK_DIR}/torch_pch.hpp "#include <torch/torch.h>\n")
execute_process(COMMAND ${CXX} ${base_flags} -x c++-header ${WORK_DIR}/torch_pch.hpp -o ${WORK_DIR}/torch_pch.hpp.gch
                RESULT_VARIABLE pch_result ERROR_VARIABLE pch_errors)
if(NOT pch_result EQUAL 0)
  message(FATAL_ERROR "cannot precompile <torch/torch.h>:\n${pch_errors}")
endif()

# One make rule per header, run two at a time (both cores stay busy: a slow header does not
# hold up the next pair), the slowest (torch_registry.hpp instantiates every method unless
# SALIENT_EXTERN_TORCH_REGISTRY, which this check need not repeat) first.
set(makefile ${WORK_DIR}/headers.mk)
set(targets)
set(rules)
foreach(header ${headers})
  string(MAKE_C_IDENTIFIER ${header} id)
  file(WRITE ${WORK_DIR}/${id}.cpp "#include \"${header}\"\n")
  if(uses_${id})
    set(command ${CXX} ${flags} -DSALIENT_EXTERN_TORCH_REGISTRY -Winvalid-pch -include ${WORK_DIR}/torch_pch.hpp ${WORK_DIR}/${id}.cpp)
    list(PREPEND targets ${id}.ok)
  else()
    set(command ${CXX} ${flags} ${WORK_DIR}/${id}.cpp)
    list(APPEND targets ${id}.ok)
  endif()
  list(JOIN command " " command_line)
  string(APPEND rules "${id}.ok:\n\t@${command_line} 2> ${id}.log && touch ${id}.ok\n")
endforeach()
list(JOIN targets " " all_targets)
file(WRITE ${makefile} "all: ${all_targets}\n${rules}")
execute_process(COMMAND make -k -j 2 -f ${makefile} WORKING_DIRECTORY ${WORK_DIR} OUTPUT_QUIET ERROR_QUIET)
set(failed)
foreach(header ${headers})
  string(MAKE_C_IDENTIFIER ${header} id)
  if(NOT EXISTS ${WORK_DIR}/${id}.ok)
    file(READ ${WORK_DIR}/${id}.log errors)
    list(APPEND failed "${header} does not compile on its own:\n${errors}")
  elseif(uses_${id})
    message(STATUS "ok: ${header} (with <torch/torch.h> precompiled)")
  else()
    message(STATUS "ok: ${header}")
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR ${failed})
endif()
