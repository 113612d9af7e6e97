"""Google providers for MCP Portal: Gmail and Google Drive, sharing one OAuth client."""
