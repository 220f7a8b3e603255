"""DMI v1beta1, the gRPC contract between edgecore and device mappers (wire compatible with KubeEdge).

Public surface:
- ``dmi.v1beta1.api_pb2`` / ``dmi.v1beta1.api_pb2_grpc``: generated messages, stubs and servicers
  (``python -m dmi.generate`` regenerates them from ``dmi/v1beta1/api.proto``);
- ``dmi.convert``: CRD models <-> DMI messages, KubeEdge's model-over-device override rules and the
  configData <-> ``google.protobuf.Any`` mapping.

Nothing is imported here so that ``import dmi.v1beta1.api_pb2`` stays light.
"""
