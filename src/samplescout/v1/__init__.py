"""Generated protobuf and gRPC stubs for ``samplescout.v1`` (see scripts/gen_protos.py)."""
