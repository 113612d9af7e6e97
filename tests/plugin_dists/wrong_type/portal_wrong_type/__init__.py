"""An entry point that is not an OAuthProvider subclass."""


class NotAProvider:
    name = "wrong_type"
    title = "Wrong type"
