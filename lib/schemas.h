/*
 * schemas — the Avro schemas in schemas/ (.avsc files), compiled into the library
 * (generated at build time) so binaries need no files at run time.
 * Static storage; never freed.
 */
#ifndef TL_SCHEMAS_H
#define TL_SCHEMAS_H

extern const char tl_schema_interaction_event[]; /* interaction_event.avsc */
extern const char tl_schema_trigger[];           /* trigger.avsc */

#endif
