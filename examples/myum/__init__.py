"""myUM: a demo service provider (python3-saml) that signs in through UM 2FA's IdP."""
