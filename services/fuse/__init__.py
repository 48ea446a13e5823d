"""samplescout fuse stage."""
