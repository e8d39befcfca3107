/* Unit tests for the work queue: work on threads, done() and release() on the loop. */
#include <criterion/criterion.h>
#include <ev.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgentry/common/workqueue.h"

/* What the jobs of one test saw. Workers only touch the atomics. */
struct ctx {
    struct ev_loop *loop;
    pthread_t loop_thread;
    sem_t gate; /* gated jobs wait here in work() */
    atomic_int worked, running, max_running, released, work_on_loop, done_off_loop,
        release_off_loop;
    int done; /* loop thread only */
    int expect;
    ev_timer guard;
    int guard_fired;
};

enum mode { SLOW, GATED, INSTANT };

struct tjob {
    struct pge_workqueue_job job;
    struct ctx *ctx;
    enum mode mode;
    int done_called;
    atomic_int work_finished;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void job_work(struct pge_workqueue_job *job)
{
    struct tjob *j = (struct tjob *)job;
    struct ctx *c = j->ctx;
    if (pthread_equal(pthread_self(), c->loop_thread))
        atomic_fetch_add(&c->work_on_loop, 1);
    int now = atomic_fetch_add(&c->running, 1) + 1;
    int seen = atomic_load(&c->max_running);
    while (now > seen && !atomic_compare_exchange_weak(&c->max_running, &seen, now))
        ;
    if (j->mode == GATED)
        sem_wait(&c->gate);
    else if (j->mode == SLOW)
        sleep_ms(5);
    atomic_fetch_sub(&c->running, 1);
    atomic_fetch_add(&c->worked, 1);
    atomic_store(&j->work_finished, 1);
}

static void job_done(struct pge_workqueue_job *job)
{
    struct tjob *j = (struct tjob *)job;
    if (!pthread_equal(pthread_self(), j->ctx->loop_thread))
        atomic_fetch_add(&j->ctx->done_off_loop, 1);
    j->done_called++;
    j->ctx->done++;
}

static void job_release(struct pge_workqueue_job *job)
{
    struct tjob *j = (struct tjob *)job;
    struct ctx *c = j->ctx;
    /* release() comes after work() and after done(), never before. */
    if (!atomic_load(&j->work_finished))
        atomic_fetch_add(&c->release_off_loop, 1000);
    if (!pthread_equal(pthread_self(), c->loop_thread))
        atomic_fetch_add(&c->release_off_loop, 1);
    free(j);
    if (atomic_fetch_add(&c->released, 1) + 1 == c->expect && c->loop &&
        pthread_equal(pthread_self(), c->loop_thread))
        ev_break(c->loop, EVBREAK_ALL);
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ctx *c = w->data;
    (void)revents;
    c->guard_fired = 1;
    ev_break(loop, EVBREAK_ALL);
}

static void ctx_init(struct ctx *c, int expect)
{
    memset(c, 0, sizeof *c);
    c->loop = ev_loop_new(EVFLAG_AUTO);
    cr_assert_not_null(c->loop);
    c->loop_thread = pthread_self();
    cr_assert_eq(sem_init(&c->gate, 0, 0), 0);
    c->expect = expect;
    ev_timer_init(&c->guard, on_guard, 5.0, 0.);
    c->guard.data = c;
}

/* Run the loop until every expected job is released (or the 5 s guard fires). */
static void ctx_run(struct ctx *c)
{
    ev_timer_start(c->loop, &c->guard);
    if (atomic_load(&c->released) < c->expect)
        ev_run(c->loop, 0);
    ev_timer_stop(c->loop, &c->guard);
    cr_assert_not(c->guard_fired, "only %d of %d jobs released", atomic_load(&c->released),
                  c->expect);
}

static struct tjob *submit(struct pge_workqueue *off, struct ctx *c, enum mode mode)
{
    struct tjob *j = calloc(1, sizeof *j);
    cr_assert_not_null(j);
    j->job.work = job_work;
    j->job.done = job_done;
    j->job.release = job_release;
    j->ctx = c;
    j->mode = mode;
    cr_assert_eq(pge_workqueue_submit(off, &j->job), 0);
    return j;
}

/* Wait (without the loop) until n jobs are released, up to 5 s. */
static void wait_released(struct ctx *c, int n)
{
    for (int i = 0; i < 5000 && atomic_load(&c->released) < n; i++)
        sleep_ms(1);
    cr_assert_eq(atomic_load(&c->released), n);
}

Test(workqueue, work_on_threads_done_and_release_on_the_loop, .timeout = 10)
{
    struct ctx c;
    ctx_init(&c, 20);
    struct pge_workqueue *off = pge_workqueue_new(c.loop);
    cr_assert_not_null(off);
    for (int i = 0; i < 20; i++)
        submit(off, &c, SLOW);
    cr_assert_eq(pge_workqueue_pending(off), 20 - (unsigned)atomic_load(&c.released));
    ctx_run(&c);
    cr_assert_eq(atomic_load(&c.worked), 20);
    cr_assert_eq(atomic_load(&c.work_on_loop), 0, "work() ran on the loop thread");
    cr_assert_eq(c.done, 20, "done() called %d times", c.done);
    cr_assert_eq(atomic_load(&c.done_off_loop), 0, "done() ran on a worker thread");
    cr_assert_eq(atomic_load(&c.release_off_loop), 0, "release() off the loop or before work()");
    cr_assert_eq(pge_workqueue_pending(off), 0);
    /* Jobs ran in parallel, on at most 8 threads. */
    cr_assert(atomic_load(&c.max_running) >= 2 && atomic_load(&c.max_running) <= 8, "%d at once",
              atomic_load(&c.max_running));
    pge_workqueue_free(off);
    ev_loop_destroy(c.loop);
}

Test(workqueue, idle_service_does_not_keep_the_loop_alive, .timeout = 10)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pge_workqueue *off = pge_workqueue_new(loop);
    cr_assert_not_null(off);
    /* Nothing else is active: ev_run returns at once instead of blocking forever. */
    ev_run(loop, 0);
    pge_workqueue_free(off);
    pge_workqueue_free(NULL);
    ev_loop_destroy(loop);
}

Test(workqueue, cancel_skips_done_but_releases, .timeout = 10)
{
    struct ctx c;
    ctx_init(&c, 2);
    struct pge_workqueue *off = pge_workqueue_new(c.loop);
    struct tjob *cancelled = submit(off, &c, GATED);
    submit(off, &c, GATED);
    pge_workqueue_cancel(&cancelled->job);
    sem_post(&c.gate);
    sem_post(&c.gate);
    ctx_run(&c);
    cr_assert_eq(atomic_load(&c.worked), 2, "a cancelled job still finishes its work");
    cr_assert_eq(c.done, 1, "done() called %d times", c.done);
    cr_assert_eq(atomic_load(&c.release_off_loop), 0);
    cr_assert_eq(pge_workqueue_pending(off), 0);
    pge_workqueue_free(off);
    ev_loop_destroy(c.loop);
}

Test(workqueue, free_with_jobs_in_flight, .timeout = 10)
{
    /* 12 jobs: 8 block in work(), 4 wait in the queue. The service goes away first; every job
     * still finishes and is released exactly once, by a worker, and no done() runs. */
    struct ctx c;
    ctx_init(&c, 12);
    struct pge_workqueue *off = pge_workqueue_new(c.loop);
    for (int i = 0; i < 12; i++)
        submit(off, &c, GATED);
    for (int i = 0; i < 50 && atomic_load(&c.running) < 8; i++)
        sleep_ms(10);
    cr_assert_eq(atomic_load(&c.running), 8, "%d running", atomic_load(&c.running));
    pge_workqueue_free(off);
    ev_loop_destroy(c.loop);
    c.loop = NULL;
    for (int i = 0; i < 12; i++)
        sem_post(&c.gate);
    wait_released(&c, 12);
    cr_assert_eq(atomic_load(&c.worked), 12);
    cr_assert_eq(c.done, 0, "done() after free");
    cr_assert_eq(atomic_load(&c.release_off_loop), 12, "released on the loop after free");
}

Test(workqueue, free_releases_finished_jobs_without_done, .timeout = 10)
{
    struct ctx c;
    ctx_init(&c, 3);
    struct pge_workqueue *off = pge_workqueue_new(c.loop);
    for (int i = 0; i < 3; i++)
        submit(off, &c, SLOW);
    /* Finished, but the loop never ran to deliver them. */
    for (int i = 0; i < 100 && atomic_load(&c.worked) < 3; i++)
        sleep_ms(10);
    sleep_ms(20);
    pge_workqueue_free(off);
    wait_released(&c, 3);
    cr_assert_eq(c.done, 0);
    ev_loop_destroy(c.loop);
}

/* libev allocator for the race test: every block is fresh, and a freed one becomes
 * inaccessible, so a late touch of a destroyed loop crashes instead of going unnoticed
 * (libev itself is not built with ASan). Nothing is ever reused or unmapped. */
static void *guard_realloc(void *p, long size)
{
    size_t *old = p ? (size_t *)p - 2 : NULL;
    void *block = NULL;
    if (size > 0) {
        size_t total = ((size_t)size + 2 * sizeof(size_t) + 4095) & ~(size_t)4095;
        size_t *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        m[0] = total;
        m[1] = (size_t)size;
        block = m + 2;
        if (old)
            memcpy(block, p, old[1] < (size_t)size ? old[1] : (size_t)size);
    }
    if (old)
        mprotect(old, old[0], PROT_NONE);
    return block;
}

/* 2000 rounds of four threads: seconds in a plain build, far more under ASan on a loaded
 * machine. The timeout only catches a hang. */
Test(workqueue, free_then_destroy_loop_races_a_finishing_worker, .timeout = 60)
{
    /* A worker that has just finished wakes the loop while the loop side frees the service
     * and destroys the loop. No worker may touch the loop once pge_workqueue_free() returned. */
    ev_set_allocator(guard_realloc);
    for (int round = 0; round < 2000; round++) {
        struct ctx c;
        ctx_init(&c, 4);
        struct pge_workqueue *off = pge_workqueue_new(c.loop);
        for (int i = 0; i < 4; i++)
            submit(off, &c, INSTANT);
        /* Vary the moment of the teardown against the workers' finish. */
        for (volatile int spin = 0; spin < (round % 64) * 100; spin++)
            ;
        pge_workqueue_free(off);
        ev_loop_destroy(c.loop);
        c.loop = NULL;
        wait_released(&c, 4);
        cr_assert_eq(c.done, 0);
        sem_destroy(&c.gate);
    }
}
