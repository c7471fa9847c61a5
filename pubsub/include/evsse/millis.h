// evsse::Millis: the one duration type of evsse's options and statistics
// (the Hub's, the stores', the client's).
#ifndef EVSSE_MILLIS_H_
#define EVSSE_MILLIS_H_

#include <chrono>

namespace evsse {

using Millis = std::chrono::milliseconds;

}  // namespace evsse

#endif  // EVSSE_MILLIS_H_
