"""Explanations aligned by hashed event ids (FedXLog 3.3): SHAP at the client, merge and plots
at the server, root-cause tables (ids -> the client's own templates) at the client."""
