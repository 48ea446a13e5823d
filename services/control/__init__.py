"""samplescout control stage."""
