"""Example service started by pgentry: meetings are recorded, each yields one PRD, each PRD is
broken down into tasks. The schema is pgentry's migrations/0001; this app never creates tables.

Configuration: DATABASE_URL (or libpq's PG* variables when it is unset).
Run: uvicorn app:app --host 0.0.0.0 --port 8000
"""
import datetime
import decimal
import logging
import os
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Dict, List, Optional

import psycopg2
import psycopg2.errors
import psycopg2.extras
import psycopg2.pool
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel

log = logging.getLogger("example-app")
_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(levelname)s:     example-app: %(message)s"))
log.addHandler(_handler)
log.setLevel(logging.INFO)
log.propagate = False

app = FastAPI(title="pgentry example: meetings, PRDs, tasks")
_pool = None
_pool_lock = threading.Lock()


def pool():
    """One small connection pool, opened on first use (pgentry already waited for the DB)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = psycopg2.pool.ThreadedConnectionPool(
                1, 4, os.environ.get("DATABASE_URL", ""),
                application_name="pgentry-example")
        return _pool


@contextmanager
def cursor():
    """A dict cursor in one transaction: committed on success, rolled back on error."""
    conn = pool().getconn()
    try:
        with conn:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
    finally:
        pool().putconn(conn)


def fetch_or_404(cur, query, args, what):
    """Run a query for one row; answer 404 "<what> not found" when there is none."""
    cur.execute(query, args)
    row = cur.fetchone()
    if row is None:
        raise HTTPException(404, f"{what} not found")
    return row


def new_id():
    return uuid.uuid4().hex


def jsonable(row):
    """Rows to JSON-friendly dicts (timestamps as ISO 8601, numerics as floats)."""
    if row is None:
        return None
    out = {}
    for key, value in row.items():
        if isinstance(value, (datetime.datetime, datetime.date)):
            value = value.isoformat()
        elif isinstance(value, decimal.Decimal):
            value = float(value)
        out[key] = value
    return out


class MeetingIn(BaseModel):
    user_id: str
    title: str
    audio_url: Optional[str] = None
    transcript: Optional[str] = None
    language: str = "es"
    duration_seconds: Optional[int] = None


class PrdIn(BaseModel):
    title: str
    content: Dict[str, Any]
    summary: Optional[str] = None


class TaskIn(BaseModel):
    title: str
    description: Optional[str] = None
    priority: str = "medium"
    assignee: Optional[str] = None
    estimated_hours: Optional[float] = None
    due_date: Optional[datetime.date] = None


class TaskPatch(BaseModel):
    status: str


@app.on_event("startup")
def startup():
    log.info("started, pid %d", os.getpid())


@app.on_event("shutdown")
def shutdown():
    # Logged when uvicorn got SIGTERM (through pgentry) and drained: the e2e test looks for it.
    log.info("shutting down cleanly, pid %d", os.getpid())
    if _pool is not None:
        _pool.closeall()


@app.get("/health")
def health():
    with cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM meetings")
        meetings = cur.fetchone()["n"]
    return {"status": "ok", "meetings": meetings}


@app.post("/meetings", status_code=201)
def create_meeting(m: MeetingIn):
    with cursor() as cur:
        cur.execute(
            "INSERT INTO meetings (id, user_id, title, audio_url, transcript, language,"
            " duration_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (new_id(), m.user_id, m.title, m.audio_url, m.transcript, m.language,
             m.duration_seconds))
        return jsonable(cur.fetchone())


@app.get("/meetings")
def list_meetings(user_id: Optional[str] = None, limit: int = 50):
    with cursor() as cur:
        cur.execute(
            "SELECT * FROM meetings WHERE %(user)s::text IS NULL OR user_id = %(user)s"
            " ORDER BY created_at DESC LIMIT %(limit)s",
            {"user": user_id, "limit": max(1, min(limit, 500))})
        return [jsonable(r) for r in cur.fetchall()]


@app.get("/meetings/{meeting_id}")
def get_meeting(meeting_id: str):
    with cursor() as cur:
        meeting = fetch_or_404(cur, "SELECT * FROM meetings WHERE id = %s", (meeting_id,),
                               "meeting")
        cur.execute("SELECT id FROM prds WHERE meeting_id = %s", (meeting_id,))
        prd = cur.fetchone()
        out = jsonable(meeting)
        out["prd_id"] = prd["id"] if prd else None
        return out


@app.post("/meetings/{meeting_id}/prd", status_code=201)
def create_prd(meeting_id: str, p: PrdIn):
    with cursor() as cur:
        # Row lock: two concurrent requests cannot both create this meeting's PRD.
        fetch_or_404(cur, "SELECT 1 FROM meetings WHERE id = %s FOR UPDATE", (meeting_id,),
                     "meeting")
        cur.execute("SELECT id FROM prds WHERE meeting_id = %s", (meeting_id,))
        if cur.fetchone() is not None:
            raise HTTPException(409, "this meeting already has a PRD")
        cur.execute(
            "INSERT INTO prds (id, meeting_id, title, content, summary)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (new_id(), meeting_id, p.title, psycopg2.extras.Json(p.content), p.summary))
        prd = cur.fetchone()
        cur.execute(
            "UPDATE meetings SET status = 'processed', processed_at = now(), updated_at = now()"
            " WHERE id = %s", (meeting_id,))
        return jsonable(prd)


@app.get("/prds/{prd_id}")
def get_prd(prd_id: str):
    with cursor() as cur:
        return jsonable(fetch_or_404(cur, "SELECT * FROM prds WHERE id = %s", (prd_id,), "PRD"))


@app.post("/prds/{prd_id}/tasks", status_code=201)
def create_task(prd_id: str, t: TaskIn):
    with cursor() as cur:
        fetch_or_404(cur, "SELECT 1 FROM prds WHERE id = %s", (prd_id,), "PRD")
        try:
            cur.execute(
                "INSERT INTO tasks (id, prd_id, title, description, priority, assignee,"
                " estimated_hours, due_date) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING *",
                (new_id(), prd_id, t.title, t.description, t.priority, t.assignee,
                 t.estimated_hours, t.due_date))
        except psycopg2.errors.InvalidTextRepresentation:
            raise HTTPException(422, "priority must be low, medium, high or critical")
        return jsonable(cur.fetchone())


@app.get("/prds/{prd_id}/tasks")
def list_tasks(prd_id: str, status: Optional[str] = None) -> List[Dict[str, Any]]:
    with cursor() as cur:
        cur.execute(
            "SELECT * FROM tasks WHERE prd_id = %(prd)s"
            " AND (%(status)s::text IS NULL OR status::text = %(status)s)"
            " ORDER BY created_at, id",
            {"prd": prd_id, "status": status})
        return [jsonable(r) for r in cur.fetchall()]


@app.patch("/tasks/{task_id}")
def update_task(task_id: str, patch: TaskPatch):
    with cursor() as cur:
        try:
            cur.execute(
                "UPDATE tasks SET status = %s, updated_at = now() WHERE id = %s RETURNING *",
                (patch.status, task_id))
        except psycopg2.errors.InvalidTextRepresentation:
            raise HTTPException(422, "status must be todo, in_progress, done or blocked")
        task = cur.fetchone()
        if task is None:
            raise HTTPException(404, "task not found")
        return jsonable(task)


@app.delete("/meetings/{meeting_id}", status_code=204)
def delete_meeting(meeting_id: str):
    with cursor() as cur:
        cur.execute("DELETE FROM meetings WHERE id = %s", (meeting_id,))
        if cur.rowcount == 0:
            raise HTTPException(404, "meeting not found")
    return Response(status_code=204)
