-- Revert the initial schema: children first, then the enum types they use.
DROP TABLE tasks;
DROP TABLE prds;
DROP TABLE meetings;
DROP TYPE task_priority;
DROP TYPE task_status;
