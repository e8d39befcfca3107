-- Initial schema of the meeting → PRD → task service: meetings are transcribed, each yields
-- one PRD (product requirements document), and each PRD is broken down into tasks.

CREATE TYPE task_status AS ENUM ('todo', 'in_progress', 'done', 'blocked');
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high', 'critical');

CREATE TABLE meetings (
    id               varchar(50)   PRIMARY KEY,
    user_id          varchar(50)   NOT NULL,
    title            varchar(255)  NOT NULL,
    audio_url        varchar(1024),
    transcript       text,
    language         varchar(10)   NOT NULL DEFAULT 'es',
    duration_seconds integer,
    status           varchar(20)   NOT NULL DEFAULT 'pending',
    error_message    text,
    processed_at     timestamptz,
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX ix_meetings_user_id ON meetings (user_id);
CREATE INDEX ix_meetings_status ON meetings (status);
CREATE INDEX ix_meetings_created_at ON meetings (created_at);

CREATE TABLE prds (
    id         varchar(50)  PRIMARY KEY,
    meeting_id varchar(50)  NOT NULL UNIQUE REFERENCES meetings (id) ON DELETE CASCADE,
    title      varchar(255) NOT NULL,
    content    jsonb        NOT NULL,
    summary    text,
    version    integer      NOT NULL DEFAULT 1,
    created_at timestamptz  NOT NULL DEFAULT now(),
    updated_at timestamptz  NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id              varchar(50)   PRIMARY KEY,
    prd_id          varchar(50)   NOT NULL REFERENCES prds (id) ON DELETE CASCADE,
    title           varchar(255)  NOT NULL,
    description     text,
    status          task_status   NOT NULL DEFAULT 'todo',
    priority        task_priority NOT NULL DEFAULT 'medium',
    assignee        varchar(100),
    estimated_hours numeric(6, 2),
    due_date        date,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX ix_tasks_prd_id ON tasks (prd_id);
CREATE INDEX ix_tasks_status ON tasks (status);
CREATE INDEX ix_tasks_priority ON tasks (priority);
CREATE INDEX ix_tasks_assignee ON tasks (assignee);
CREATE INDEX ix_tasks_due_date ON tasks (due_date);
