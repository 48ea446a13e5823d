"""samplescout select stage."""
