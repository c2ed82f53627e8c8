"""The flow a weight update takes: intake -> check (gates) -> ... ; plus training updates.

``intake.propose`` signs a manifest and records a proposal; ``check.check`` runs the
gates the policy requires and signs the report. The CLI and the dashboard call these.
"""
