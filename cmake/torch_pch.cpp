// The target that owns the build's precompiled <torch/torch.h> (CMakeLists.txt: salient_torch_pch).
