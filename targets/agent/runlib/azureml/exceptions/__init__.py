"""The exceptions of ``azureml.exceptions`` that the run library raises."""

__all__ = ["AzureMLException", "ServiceCallError", "UserErrorException"]


class AzureMLException(Exception):
    """Base of the run library's errors (as in the real SDK)."""


class UserErrorException(AzureMLException):
    """A call the run cannot do as written."""


class ServiceCallError(UserErrorException):
    """A call that needs the Azure ML service, which a run under ``targets`` does not have."""

    def __init__(self, call: str, instead: str) -> None:
        self.call = call
        super().__init__(
            "%s needs the Azure ML service, which this run does not have (it runs under "
            "targets, with no cloud workspace). Instead: %s. See docs/azureml-v1.md, "
            '"Inside the run".' % (call, instead)
        )
