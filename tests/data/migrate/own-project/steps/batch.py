# A step named by pipeline.py (script_name="batch.py", source_directory=STEPS): left alone
# although it neither calls Run.get_context() nor uses Run only.
from azureml.core import Model

print(Model)
