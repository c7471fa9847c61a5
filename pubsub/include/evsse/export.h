// EVSSE_API: what evsse's shared libraries export. The libraries are built
// with hidden visibility (-fvisibility=hidden -fvisibility-inlines-hidden):
// only what an installed header marks EVSSE_API is in a .so's dynamic symbol
// table. A function is marked on its declaration; a class with virtual
// functions (an extension seam: Backend, Exchange, Handler, ...) is marked as
// a whole so that its vtable and typeinfo are one object across libraries
// (dynamic_cast, exceptions); a class behind a pointer to its
// implementation (Hub, Client) marks its members, so the implementation
// stays hidden. For the program using the headers the mark only says where
// the definition lives; in a static build it changes nothing.
#ifndef EVSSE_EXPORT_H_
#define EVSSE_EXPORT_H_

#if defined(__GNUC__) || defined(__clang__)
#define EVSSE_API __attribute__((visibility("default")))
#else
#define EVSSE_API
#endif

#endif  // EVSSE_EXPORT_H_
