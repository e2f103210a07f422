"""Deployment files generated from a user's ``server.py``: a container image and Kubernetes manifests."""
