"""DMI v1beta1 proto and its generated stubs (``api_pb2``, ``api_pb2_grpc``); see README.md."""
