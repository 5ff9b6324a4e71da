# The layer rules, checked over the sources: which project folders and which libraries each layer may
# include. The build enforces the folders too (each layer exports only its own headers); this check
# also covers the libraries, which live in system include directories every target can see.
#
#   cmake -DROOT=<source tree> -P scripts/check-layers.cmake
#
# Exits non-zero naming every violation as file:line. Tests and benchmarks may include anything: they
# set up and inspect the database with SQL of their own.
#
#   layer      folders                          may include (project)                  may not include
#   pure       core/{base,config,crypto,        pure                                   libpqxx, Asio, Beast,
#              domain,protocol}                                                        spdlog, systemd
#   store      core/store                       pure, store                            Beast, systemd
#   net        core/{net,wechat}                pure, net                              libpqxx, systemd
#   workflow   core/workflow                    pure, store, net, workflow             libpqxx, systemd
#   daemon     daemon                           everything in core, its own files      libpqxx
#   simulator  tools/wxpay-sim                  pure, net, its own files               libpqxx, systemd
#   send       tools/wxrecon-send.cpp           pure                                   libpqxx, spdlog, systemd
#
# Outside core/store the word "pqxx" may not appear at all: a workflow that names a connection type
# builds its own transactions, which is the store's job. And the project's includes form no cycle.
cmake_minimum_required(VERSION 3.25)
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<source tree> -P check-layers.cmake")
endif()

set(pure_folders base config crypto domain protocol)
set(net_folders net wechat)

set(layer_pure_allows ${pure_folders})
set(layer_store_allows ${pure_folders} store)
set(layer_net_allows ${pure_folders} ${net_folders})
set(layer_workflow_allows ${pure_folders} store ${net_folders} workflow)
set(layer_daemon_allows ${pure_folders} store ${net_folders} workflow)
set(layer_simulator_allows ${pure_folders} ${net_folders})
set(layer_send_allows ${pure_folders})

set(layer_pure_forbids pqxx/ boost/asio boost/beast spdlog/ systemd/)
set(layer_store_forbids boost/beast systemd/)
set(layer_net_forbids pqxx/ systemd/)
set(layer_workflow_forbids pqxx/ systemd/)
set(layer_daemon_forbids pqxx/)
set(layer_simulator_forbids pqxx/ systemd/)
set(layer_send_forbids pqxx/ spdlog/ systemd/)

function(layer_of file out)
  set(layer "")
  if(file MATCHES "^core/(base|config|crypto|domain|protocol)/")
    set(layer pure)
  elseif(file MATCHES "^core/store/")
    set(layer store)
  elseif(file MATCHES "^core/(net|wechat)/")
    set(layer net)
  elseif(file MATCHES "^core/workflow/")
    set(layer workflow)
  elseif(file MATCHES "^core/")
    set(layer unknown)
  elseif(file MATCHES "^daemon/")
    set(layer daemon)
  elseif(file MATCHES "^tools/wxpay-sim/")
    set(layer simulator)
  elseif(file STREQUAL "tools/wxrecon-send.cpp")
    set(layer send)
  endif()
  set(${out} "${layer}" PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE sources RELATIVE ${ROOT}
  ${ROOT}/core/*.cpp ${ROOT}/core/*.hpp ${ROOT}/daemon/*.cpp ${ROOT}/daemon/*.hpp
  ${ROOT}/tools/*.cpp ${ROOT}/tools/*.hpp)
list(SORT sources)

set(violations "")
set(checked 0)
foreach(file IN LISTS sources)
  layer_of(${file} layer)
  if(layer STREQUAL "")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  if(layer STREQUAL "unknown")
    list(APPEND violations "${file}: a folder of core/ that belongs to no layer (add it to the table)")
    continue()
  endif()
  # One list element per line: the characters CMake lists treat specially are replaced first.
  file(READ ${ROOT}/${file} text)
  string(REPLACE "\\" "/" text "${text}")
  string(REPLACE ";" "," text "${text}")
  string(REPLACE "[" "(" text "${text}")
  string(REPLACE "]" ")" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(number 0)
  foreach(line IN LISTS lines)
    math(EXPR number "${number} + 1")
    if(NOT layer STREQUAL "store" AND line MATCHES "pqxx")
      list(APPEND violations "${file}:${number}: names libpqxx outside core/store (add a store operation instead)")
      continue()
    endif()
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      set(target "${CMAKE_MATCH_1}")
      # The include graph, for the cycle check below: a folder include names a file of core/, any
      # other a file beside the includer.
      if(target MATCHES "/")
        set(included "core/${target}")
      else()
        get_filename_component(here ${file} DIRECTORY)
        set(included "${here}/${target}")
      endif()
      string(MAKE_C_IDENTIFIER "${file}" node)
      list(APPEND edges_${node} "${included}")
      if(target MATCHES "^([^/]+)/")
        set(folder "${CMAKE_MATCH_1}")
        if(NOT folder IN_LIST layer_${layer}_allows)
          list(APPEND violations "${file}:${number}: the ${layer} layer may not include \"${target}\"")
        endif()
      elseif(file MATCHES "^core/")
        list(APPEND violations "${file}:${number}: include \"${target}\" with its folder")
      endif()
    elseif(line MATCHES "^[ \t]*#[ \t]*include[ \t]*<([^>]+)>")
      set(target "${CMAKE_MATCH_1}")
      foreach(prefix IN LISTS layer_${layer}_forbids)
        string(FIND "${target}" "${prefix}" at)
        if(at EQUAL 0)
          list(APPEND violations "${file}:${number}: the ${layer} layer may not include <${target}>")
        endif()
      endforeach()
    endif()
  endforeach()
endforeach()

# No include cycle: a depth-first walk from every file, with an explicit stack.
foreach(start IN LISTS sources)
  string(MAKE_C_IDENTIFIER "${start}" start_node)
  if(DEFINED done_${start_node})
    continue()
  endif()
  set(stack_files "${start}")
  set(stack_next "0")
  set(on_path_${start_node} TRUE)
  while(stack_files)
    list(GET stack_files -1 current)
    list(GET stack_next -1 next)
    string(MAKE_C_IDENTIFIER "${current}" node)
    set(children ${edges_${node}})
    list(LENGTH children child_count)
    if(next LESS child_count)
      list(GET children ${next} child)
      math(EXPR next "${next} + 1")
      list(POP_BACK stack_next)
      list(APPEND stack_next ${next})
      string(MAKE_C_IDENTIFIER "${child}" child_node)
      if(on_path_${child_node})
        string(REPLACE ";" " -> " shown "${stack_files};${child}")
        list(APPEND violations "include cycle: ${shown}")
      elseif(NOT DEFINED done_${child_node})
        list(APPEND stack_files "${child}")
        list(APPEND stack_next 0)
        set(on_path_${child_node} TRUE)
      endif()
    else()
      set(done_${node} TRUE)
      unset(on_path_${node})
      list(POP_BACK stack_files)
      list(POP_BACK stack_next)
    endif()
  endwhile()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "check-layers: no sources under ${ROOT}")
endif()
list(LENGTH violations count)
if(count GREATER 0)
  foreach(v IN LISTS violations)
    message(NOTICE "layer violation: ${v}")
  endforeach()
  message(FATAL_ERROR "check-layers: ${count} violation(s) in ${checked} files")
endif()
message(STATUS "check-layers: ${checked} files keep to their layers")
