"""GraphQL service over the REST API (Ariadne). Not built yet: see the GraphQL issue."""
