# SPDX-License-Identifier: MIT
# The native addon: engine/addon/addon.cc (type conversion only) linked with
# every C file of the engine. engine/src/*.c is globbed because the engine
# gains files as it grows; a new file needs no change here.
{
  'targets': [
    {
      'target_name': 'reflector',
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'sources': [
        'engine/addon/addon.cc',
        '<!@(ls -1 engine/src/*.c)',
      ],
      'include_dirs': [
        'engine/include',
        'engine/src',
      ],
      'defines': [
        'NAPI_VERSION=8',
        '_GNU_SOURCE',
      ],
      'cflags_c': [ '-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-D_GNU_SOURCE' ],
      'cflags_cc': [ '-std=c++17', '-O2', '-Wall', '-Wextra' ],
      # -ldl: the kernel tier opens libbpf.so.1 at run time (glibc < 2.34 keeps dlopen there)
      'libraries': [ '-lpthread', '-ldl' ],
      # Never unmapped: a region's BackingStore deleter (in this object) may
      # run at isolate teardown after Node dlclose()d the addon of an
      # ending worker thread.
      'ldflags': [ '-Wl,-z,nodelete' ],
    },
  ],
}
