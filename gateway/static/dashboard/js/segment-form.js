// The filter form behind `SegmentFilter`: place, device, demographics and behaviour. Used by
// the segment explorer and to narrow a funnel.

import { field, h, select } from "./dom.js";

let datalistCount = 0;

function suggest(input, values) {
  const id = `suggest-${++datalistCount}`;
  input.setAttribute("list", id);
  return [input, h("datalist", { id }, values.map((v) => h("option", { value: v })))];
}

export class SegmentForm {
  /** `dims` holds suggested values ({city, country, os, deviceType}); `events` event names. */
  constructor({ dims, events, prefix }) {
    const text = (name) => h("input", { type: "text", name: `${prefix}-${name}`,
      autocomplete: "off" });
    const eventChoice = (name) => select([["", "(none)"], ...events],
      { name: `${prefix}-${name}` });
    this.inputs = {
      city: text("city"),
      country: text("country"),
      deviceType: text("device-type"),
      os: text("os"),
      gender: select([["", "Any"], ["female", "female"], ["male", "male"],
        ["non_binary", "non-binary"]], { name: `${prefix}-gender` }),
      ageMin: h("input", { type: "number", min: "0", max: "130", name: `${prefix}-age-min` }),
      ageMax: h("input", { type: "number", min: "0", max: "130", name: `${prefix}-age-max` }),
      didEvent: eventChoice("did"),
      didAtLeast: h("input", { type: "number", min: "1", value: "1",
        name: `${prefix}-did-at-least` }),
      didNotEvent: eventChoice("did-not"),
      traitKey: text("trait-key"),
      traitValue: text("trait-value"),
    };
    const i = this.inputs;
    this.el = h("div", { class: "segment-form" },
      field("City", suggest(i.city, dims.city)),
      field("Country", suggest(i.country, dims.country)),
      field("Device type", suggest(i.deviceType, dims.deviceType)),
      field("OS", suggest(i.os, dims.os)),
      field("Gender", i.gender),
      field("Age from", i.ageMin),
      field("Age to", i.ageMax),
      field("Did event", i.didEvent),
      field("At least (times)", i.didAtLeast),
      field("Did not do", i.didNotEvent),
      field("Trait", i.traitKey),
      field("Trait value", i.traitValue));
  }

  /** The SegmentFilter input, or null when nothing is set. */
  value() {
    const i = this.inputs;
    const filter = {};
    for (const name of ["city", "country", "deviceType", "os", "gender"]) {
      const v = i[name].value.trim();
      if (v) filter[name] = v;
    }
    if (i.ageMin.value !== "") filter.ageMin = Number(i.ageMin.value);
    if (i.ageMax.value !== "") filter.ageMax = Number(i.ageMax.value);
    if (i.didEvent.value) {
      filter.did = [{ event: i.didEvent.value,
        atLeast: Math.max(1, Number(i.didAtLeast.value) || 1) }];
    }
    if (i.didNotEvent.value) filter.didNot = [{ event: i.didNotEvent.value }];
    if (i.traitKey.value.trim()) {
      filter.traits = [{ key: i.traitKey.value.trim(), value: i.traitValue.value.trim() }];
    }
    return Object.keys(filter).length ? filter : null;
  }

  /** One line saying what the filter keeps. */
  describe() {
    const f = this.value();
    if (!f) return "everyone";
    const parts = [];
    for (const name of ["city", "country", "deviceType", "os", "gender"]) {
      if (f[name]) parts.push(`${name === "deviceType" ? "device" : name} ${f[name]}`);
    }
    if (f.ageMin !== undefined || f.ageMax !== undefined) {
      parts.push(`age ${f.ageMin ?? "…"}–${f.ageMax ?? "…"}`);
    }
    if (f.did) parts.push(`did ${f.did[0].event} ≥ ${f.did[0].atLeast}×`);
    if (f.didNot) parts.push(`never did ${f.didNot[0].event}`);
    if (f.traits) parts.push(`${f.traits[0].key} = ${f.traits[0].value}`);
    return parts.join(", ");
  }
}
