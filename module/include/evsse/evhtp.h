// evsse::evhtp: mount evsse endpoints on a libevhtp (1.2.18) server.
//
// The server, its event_base and its other routes stay the caller's. Loop
// thread only, except where marked. evhtp_set_cb matches path prefixes and
// the first registered callback wins: register longer paths that share an
// evsse path's prefix ("/events2") before it, and shorter prefixes ("/")
// after it, or use evhtp_set_gencb for them. A mounted endpoint answers only
// its exact path: "/eventsXYZ" or "/events/sub" get 404.
//
// Servers that set evhtp_set_timeouts keep them for ordinary requests; evsse
// turns them off on each stream it starts (its own heartbeat and write-stall
// timeouts apply instead) and restores them when the stream ends cleanly.
//
// Teardown (module/README.md, "Lifetime"): destroy in reverse order of
// creation: the mount handles (Mounted), then the Hub, then the server. A
// Hub that goes while its paths stay mounted takes its endpoints with it;
// the paths then answer 503. libevhtp 1.2.18's evhtp_free does not close
// open connections; they keep running against the freed server. So end the
// streams first (Hub::Shutdown, or destroying the Hub, which aborts them),
// let the loop run until they are closed, then call evhtp_free, and do not
// run the loop again while other connections may remain.
//
// libevhtp bounds each request line and header to 8 KiB but not their
// number: requests to evsse paths are closed past 100 headers or 64 KiB of
// headers (the connection is dropped without a status, as libevhtp does for
// its own limits).
//
// While a stream is open, evsse owns its connection's on_write hook
// (evhtp_hook_on_write); the application must not set one on connections
// that reach evsse endpoints.
//
// Each Mount keeps a small routing record (the path, the endpoint) for the
// life of the process: libevhtp gives no notice when a server is freed and
// cannot take a callback off one. Unmounting (Mounted) makes the path
// answer 404, and it stays taken on that server.
#ifndef EVSSE_EVHTP_H_
#define EVSSE_EVHTP_H_

#include <functional>

#include "evsse/export.h"
#include "evsse/hub.h"
#include "evsse/mounted.h"
#include "evsse/options.h"
#include "evsse/status.h"
#include "evsse/tls.h"

struct evhtp;
struct event_base;
typedef struct evhtp evhtp_t;

namespace evsse::evhtp {

// Mount serves a text/event-stream subscribe endpoint at `path`:
// GET/HEAD `path?topic=a&topic=b` with Last-Event-ID resume, OPTIONS for
// CORS preflight, 405 for other methods. Loop thread of `hub`, which must
// run on the server's event_base (a server without worker threads). The
// handle it returns keeps the path mounted (evsse/mounted.h).
EVSSE_API Mounted Mount(::evhtp_t* htp, const char* path, Hub* hub,
                        const StreamOptions& options = {});

// MountPublish serves the HTTP publish endpoint at `path`:
// POST `path?topic=T[&event=TYPE]`, body = data, answers 200 {"id":"..."}.
// The topic comes from the URL only (a form-encoded body is never read as
// the query, unlike libevhtp's default).
EVSSE_API Mounted MountPublish(::evhtp_t* htp, const char* path, Hub* hub,
                               const PublishOptions& options);

// ServeTls makes every connection `htp` accepts from now on speak TLS
// (libevhtp's own SSL path; use it instead of evhtp_ssl_init). The files
// are read now: a bad one is an error naming it with OpenSSL's reason, and
// changes nothing. Calling it again reloads: connections accepted
// afterwards get the new certificate, open streams keep theirs. evhtp_free
// frees the context. With worker threads (evhtp_use_threads_wexit) the
// workers read the context as they accept: call it before the server
// accepts, and reload only on a server without workers.
EVSSE_API Status ServeTls(::evhtp_t* htp, const TlsOptions& options);

// HubForLoop returns the Hub that runs on `base`.
using HubForLoop = std::function<Hub*(event_base* base)>;

// MountWorkers is Mount for servers that run connections on worker threads
// (evhtp_use_threads_wexit): each request is served by the Hub of the loop
// its connection lives on. `hub_for_loop` is called on that loop's thread
// (loops may call it concurrently), at most once per loop (the endpoint is
// cached per event_base, under a mutex), and must return a Hub created on
// that base that outlives the server, or nullptr (the request then gets
// 503). The Hubs of one server usually share a pubsub::Bus (HubOptions::bus)
// so that an event published on any of them reaches every subscriber. The
// options are checked at once. Call it before the server accepts
// connections. Before evhtp_free stops the workers, end the streams on every
// Hub (Hub::Shutdown) and let the loops close them.
EVSSE_API Mounted MountWorkers(::evhtp_t* htp, const char* path,
                               HubForLoop hub_for_loop,
                               const StreamOptions& options = {});

// MountPublishWorkers is MountPublish for worker-thread servers; see
// MountWorkers.
EVSSE_API Mounted MountPublishWorkers(::evhtp_t* htp, const char* path,
                                      HubForLoop hub_for_loop,
                                      const PublishOptions& options);

}  // namespace evsse::evhtp

#endif  // EVSSE_EVHTP_H_
