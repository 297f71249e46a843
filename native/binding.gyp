{
  "targets": [
    {
      "target_name": "mopo_kernels",
      "sources": ["kernels.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-Wno-maybe-uninitialized"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
