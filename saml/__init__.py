"""The SSO door: a SAML 2.0 identity provider that puts the 2FA prompt after the password."""
