# Python 2 code that mentions azureml: it does not parse, so it is reported and left as is.
from azureml.core import Workspace
print "workspace", Workspace
