"""The contract Base A's pipelines and Base B's API share: the entities, their SQL types, the bulk
record format and the version digest. It imports no service: both sides import it."""
