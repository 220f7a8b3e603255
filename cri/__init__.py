"""The Container Runtime Interface (CRI v1) messages edged speaks to containerd: generated code only.

``cri/v1/api.proto`` is Kubernetes' ``k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`` (cri-api v0.34.0,
Apache-2.0); ``python -m cri.generate [--check]`` regenerates ``cri/v1/api_pb2.py(i)`` from it. The calls
go through ``dmi.rpc.Channel`` (our gRPC on Unix sockets), so no gRPC stubs are generated.
"""
