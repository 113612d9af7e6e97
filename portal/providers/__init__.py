"""Provider plugins: the contract (``base``), the host (``registry``) and per-team settings."""
from portal.providers.base import CONTRACT_VERSION, OAuthProvider, SettingSpec

__all__ = ["CONTRACT_VERSION", "OAuthProvider", "SettingSpec"]
