"""samplescout: find the samples on a microscope's sample holder, coarse to fine."""

from __future__ import annotations

__version__ = "0.1.0"
