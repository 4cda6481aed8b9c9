"""REST handlers under /api/v1, declared as endpoints so routing and the OpenAPI document agree."""
