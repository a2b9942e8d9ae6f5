//! AtlasAI tenant plane.
