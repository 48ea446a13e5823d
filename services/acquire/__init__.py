"""samplescout acquire stage."""
