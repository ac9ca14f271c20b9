-- One PostgreSQL server, three databases: Airflow's metadata, MLflow's tracking and registry
-- store, and usagecast's reporting tables. Runs once, when the data volume is first created.
CREATE USER airflow WITH PASSWORD 'airflow';
CREATE DATABASE airflow OWNER airflow;
CREATE USER mlflow WITH PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;
CREATE USER usagecast WITH PASSWORD 'usagecast';
CREATE DATABASE usagecast OWNER usagecast;
