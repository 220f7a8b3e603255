"""The patch media types (``Content-Type`` of a PATCH request), apart from :mod:`kubeapi.patch` so that
serving reads (the edge MetaServer) does not import the patch machinery."""

from __future__ import annotations

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
