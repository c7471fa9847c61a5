// evsse::evhttp: mount evsse endpoints on a libevent evhttp server.
//
// The server, its event_base and its other routes stay the caller's. Mount
// registers an exact-path callback (evhttp_set_cb), so the path must be free.
//
// Loop thread only. Lifetime (module/README.md, "Lifetime"): destroy in
// reverse order of creation. The mount handles go first; then the Hub and
// the server in either order: evhttp_free(http) first closes the open
// streams (the Hub hears of each), a Hub destroyed first ends them and its
// paths answer 503 while the server lives on.
// Servers that set evhttp_set_timeout keep it for ordinary requests (it also
// bounds slow request headers); evsse turns it off on each stream it starts
// and applies its own heartbeat and write-stall timeouts instead.
#ifndef EVSSE_EVHTTP_H_
#define EVSSE_EVHTTP_H_

#include "evsse/export.h"
#include "evsse/hub.h"
#include "evsse/mounted.h"
#include "evsse/options.h"
#include "evsse/status.h"
#include "evsse/tls.h"

struct evhttp;

namespace evsse::evhttp {

// Mount serves a text/event-stream subscribe endpoint at `path`:
// GET/HEAD `path?topic=a&topic=b` with Last-Event-ID resume, OPTIONS for
// CORS preflight, 405 for other methods. The handle it returns keeps the
// path mounted and takes it off the server when destroyed (evsse/mounted.h).
EVSSE_API Mounted Mount(struct ::evhttp* http, const char* path, Hub* hub,
                        const StreamOptions& options = {});

// ServeTls makes every connection `http` accepts from now on speak TLS
// (through libevent's OpenSSL bufferevents, evhttp_set_bevcb: it replaces a
// bufferevent callback set before). The files are read now: a bad one is an
// error naming it with OpenSSL's reason, and changes nothing. Calling it
// again reloads: connections accepted afterwards get the new certificate,
// open streams keep theirs. Loop thread. The context is kept until the
// process exits or ServeTls is called again for a server at that address.
EVSSE_API Status ServeTls(struct ::evhttp* http, const TlsOptions& options);

// MountPublish serves the HTTP publish endpoint at `path`:
// POST `path?topic=T[&event=TYPE]`, body = data, answers 200 {"id":"..."}.
// Its handle as Mount's.
EVSSE_API Mounted MountPublish(struct ::evhttp* http, const char* path,
                               Hub* hub, const PublishOptions& options);

}  // namespace evsse::evhttp

#endif  // EVSSE_EVHTTP_H_
