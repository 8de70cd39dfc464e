# Built by native/build.mjs (npm install) or `node-gyp rebuild` in this folder.
# Libraries are found by detect.mjs: oneDNN and/or OpenBLAS (at least one is expected; without
# either the products fall back to a plain loop).
{
  'targets': [
    {
      'target_name': 'persona_native',
      'sources': ['src/addon.cc', 'src/gemm.cc', 'src/ops.cc', 'src/fused.cc'],
      'include_dirs': [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        '<!@(node detect.mjs includes)',
      ],
      'defines': ['NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_CPP_EXCEPTIONS_ALL', 'NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_DEPRECATED', '<!@(node detect.mjs defines)'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti'],
      'cflags_cc': ['<!@(node detect.mjs cflags)'],
      'libraries': ['<!@(node detect.mjs libs)'],
      'xcode_settings': {
        'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
        'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
        'MACOSX_DEPLOYMENT_TARGET': '11.0',
        'OTHER_CPLUSPLUSFLAGS': ['<!@(node detect.mjs cflags)'],
        'OTHER_LDFLAGS': ['<!@(node detect.mjs libs)'],
      },
    },
  ],
}
