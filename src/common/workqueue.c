/* Run a blocking call (getaddrinfo, PQcancel) on a worker thread, finish it on the loop. */
#include "pgentry/common/workqueue.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#define MAX_THREADS  8
#define THREAD_STACK (256 * 1024)

struct pge_workqueue {
    struct ev_loop *loop;
    ev_async wake;
    pthread_mutex_t mu;
    struct pge_workqueue_job *queue_head, *queue_tail; /* waiting for a thread */
    struct pge_workqueue_job *done_head, *done_tail;   /* finished, for the loop */
    unsigned threads;                                  /* running worker threads */
    unsigned pending;                                  /* submitted, not yet released */
    int orphaned;                                      /* freed by the loop side */
};

static void push(struct pge_workqueue_job **head, struct pge_workqueue_job **tail,
                 struct pge_workqueue_job *job)
{
    job->next_ = NULL;
    if (*tail)
        (*tail)->next_ = job;
    else
        *head = job;
    *tail = job;
}

static struct pge_workqueue_job *pop(struct pge_workqueue_job **head,
                                     struct pge_workqueue_job **tail)
{
    struct pge_workqueue_job *job = *head;
    if (job) {
        *head = job->next_;
        if (!*head)
            *tail = NULL;
        job->next_ = NULL;
    }
    return job;
}

static void destroy(struct pge_workqueue *off)
{
    pthread_mutex_destroy(&off->mu);
    free(off);
}

static void *worker(void *arg)
{
    struct pge_workqueue *off = arg;
    for (;;) {
        pthread_mutex_lock(&off->mu);
        struct pge_workqueue_job *job = pop(&off->queue_head, &off->queue_tail);
        if (!job) {
            off->threads--;
            int last = off->orphaned && off->threads == 0;
            pthread_mutex_unlock(&off->mu);
            if (last)
                destroy(off);
            return NULL;
        }
        pthread_mutex_unlock(&off->mu);

        job->work(job);

        pthread_mutex_lock(&off->mu);
        if (off->orphaned) {
            /* Nobody listens on the loop any more: release here. */
            off->pending--;
            pthread_mutex_unlock(&off->mu);
            job->release(job);
            continue;
        }
        push(&off->done_head, &off->done_tail, job);
        /* Wake the loop before unlocking: once pge_workqueue_free() has taken the lock, no
         * worker may touch the loop, which its owner may destroy right after. */
        ev_async_send(off->loop, &off->wake);
        pthread_mutex_unlock(&off->mu);
    }
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    struct pge_workqueue *off = w->data;
    (void)loop;
    (void)revents;
    for (;;) {
        pthread_mutex_lock(&off->mu);
        struct pge_workqueue_job *job = pop(&off->done_head, &off->done_tail);
        if (job)
            off->pending--;
        pthread_mutex_unlock(&off->mu);
        if (!job)
            break;
        if (!job->cancelled_ && job->done)
            job->done(job);
        job->release(job);
    }
}

struct pge_workqueue *pge_workqueue_new(struct ev_loop *loop)
{
    struct pge_workqueue *off = calloc(1, sizeof *off);
    if (!off)
        return NULL;
    off->loop = loop;
    if (pthread_mutex_init(&off->mu, NULL) != 0) {
        free(off);
        return NULL;
    }
    ev_async_init(&off->wake, on_wake);
    off->wake.data = off;
    ev_async_start(loop, &off->wake);
    /* The wake-up watcher alone must not keep the loop alive. */
    ev_unref(loop);
    return off;
}

static int start_thread(struct pge_workqueue *off)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    int rc;

    if (pthread_attr_init(&attr) != 0)
        return EAGAIN;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, THREAD_STACK);
    /* Workers inherit a full signal mask: signals belong to the loop thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&tid, &attr, worker, off);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

int pge_workqueue_submit(struct pge_workqueue *off, struct pge_workqueue_job *job)
{
    int rc = 0;
    job->cancelled_ = 0;
    pthread_mutex_lock(&off->mu);
    push(&off->queue_head, &off->queue_tail, job);
    off->pending++;
    if (off->threads < MAX_THREADS) {
        rc = start_thread(off);
        if (rc == 0) {
            off->threads++;
        } else if (off->threads > 0) {
            rc = 0; /* a running worker will get to it */
        } else {
            /* Undo: the job never ran and never will. */
            off->queue_head = off->queue_tail = NULL;
            off->pending--;
        }
    }
    pthread_mutex_unlock(&off->mu);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

void pge_workqueue_cancel(struct pge_workqueue_job *job)
{
    job->cancelled_ = 1;
}

unsigned pge_workqueue_pending(const struct pge_workqueue *off)
{
    return off->pending;
}

void pge_workqueue_free(struct pge_workqueue *off)
{
    if (!off)
        return;
    ev_ref(off->loop);
    ev_async_stop(off->loop, &off->wake);

    pthread_mutex_lock(&off->mu);
    /* Finished jobs nobody will see: release them now (their done() is skipped). */
    struct pge_workqueue_job *job;
    while ((job = pop(&off->done_head, &off->done_tail))) {
        off->pending--;
        job->release(job);
    }
    off->orphaned = 1;
    int last = off->threads == 0;
    pthread_mutex_unlock(&off->mu);
    if (last)
        destroy(off);
}
