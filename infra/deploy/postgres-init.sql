-- One server, three databases: the Prefect API, MLflow's tracking store, patchsmith's store.
CREATE DATABASE prefect OWNER patchsmith;
CREATE DATABASE mlflow OWNER patchsmith;
