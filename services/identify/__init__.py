"""samplescout identify stage."""
