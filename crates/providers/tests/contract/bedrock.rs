//! Contract harness for the bedrock dialect (not implemented yet).
