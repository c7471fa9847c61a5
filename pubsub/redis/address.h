// The Redis link's addresses: evsse::pubsub::Address (the grammar the
// configuration language checks too).
#ifndef EVSSE_REDIS_ADDRESS_H_
#define EVSSE_REDIS_ADDRESS_H_

#include "evsse/pubsub/address.h"

namespace evsse::redis {

using pubsub::Address;
using pubsub::ParseAddress;

}  // namespace evsse::redis

#endif  // EVSSE_REDIS_ADDRESS_H_
