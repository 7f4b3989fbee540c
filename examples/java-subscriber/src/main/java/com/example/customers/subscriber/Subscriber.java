package com.example.customers.subscriber;

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemAlreadyExistsException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.message.BadHeaderException;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.MissingSchemaException;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads CustomerIdAssigned events from customer-ids' output topic and prints each as one JSON
 * line on stdout: the record's fields plus partition, offset and key.
 *
 * <p>A value comes in one of two framings, told apart by its first byte:
 *
 * <ul>
 *   <li>Avro single-object encoding: 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint
 *       of the writer schema, then Avro binary. Avro's own {@link BinaryMessageDecoder} reads it
 *       without a schema registry.
 *   <li>Confluent wire format (when customer-ids runs with a schema registry): 0x00, the 4-byte
 *       big-endian schema id, then Avro binary. The writer schema is looked up by id in the
 *       registry given with --schema-registry-url ({@link SchemaRegistry}).
 * </ul>
 *
 * <p>Both are read into the current CustomerIdAssigned schema (Avro schema resolution), so one run
 * reads a topic that holds both, as during a move from one framing to the other. The topic is
 * written by a transactional producer: read_committed is what makes a reader see each assignment
 * exactly once.
 *
 * <p>A record that does not decode is reported on stderr with its partition and offset, counted,
 * and skipped; it never stops the subscriber.
 */
public final class Subscriber {
  static final String SCHEMA_NAME = "CustomerIdAssigned";
  static final String BUNDLED_SCHEMA = "/schemas/" + SCHEMA_NAME + ".avsc";
  static final int MAX_VALUE_BYTES = 16 * 1024 * 1024;

  private static final String USAGE =
      """
      usage: java -jar customer-ids-java-subscriber.jar [options]
        --bootstrap-servers HOSTS  Kafka brokers (default 127.0.0.1:19092, `customer-ids stack up`)
        --topic TOPIC              default customer.id-assigned
        --group-id GROUP           consumer group; its offsets are committed
                                   (default customer-ids-java-subscriber)
        --max-records N            exit after N records (decoded or not)
        --idle-exit-ms M           exit after M ms in which no record came
        --schema-dir DIR           read CustomerIdAssigned.avsc, history/CustomerIdAssigned.*.avsc
                                   from DIR, not the copy of schemas/ bundled at build time
        --property KEY=VALUE       any other consumer setting (security, ...); repeatable
        --schema-registry-url URL  Confluent-compatible registry for Confluent-framed values
                                   (magic byte 0), e.g. http://127.0.0.1:18081/apis/ccompat/v7
        --schema-registry-user U   basic-auth user (default: env SCHEMA_REGISTRY_USER)
        --schema-registry-password P
                                   basic-auth password (default: env SCHEMA_REGISTRY_PASSWORD)
        --decode-file FILE         no Kafka: decode FILE's bytes as one record value, print it
                                   like a record (partition -1, offset = position of the FILE
                                   among the --decode-file options); repeatable
      Prints one JSON line per record on stdout; diagnostics and a summary go to stderr.
      """;

  record Options(
      String bootstrapServers,
      String topic,
      String groupId,
      long maxRecords,
      long idleExitMs,
      Path schemaDir,
      Map<String, String> properties,
      String schemaRegistryUrl,
      String schemaRegistryUser,
      String schemaRegistryPassword,
      List<Path> decodeFiles) {

    static Options parse(String[] args) {
      return parse(args, System.getenv());
    }

    static Options parse(String[] args, Map<String, String> env) {
      String bootstrap = "127.0.0.1:19092";
      String topic = "customer.id-assigned";
      String group = "customer-ids-java-subscriber";
      long maxRecords = 0;
      long idleExitMs = 0;
      Path schemaDir = null;
      Map<String, String> properties = new HashMap<>();
      String registryUrl = null;
      String registryUser = null;
      String registryPassword = null;
      List<Path> decodeFiles = new ArrayList<>();
      for (int i = 0; i < args.length; i++) {
        String flag = args[i];
        if (flag.equals("--help") || flag.equals("-h")) {
          System.out.print(USAGE);
          System.exit(0);
        }
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException(flag + " needs a value");
        }
        String value = args[++i];
        switch (flag) {
          case "--bootstrap-servers" -> bootstrap = value;
          case "--topic" -> topic = value;
          case "--group-id" -> group = value;
          case "--max-records" -> maxRecords = positive(flag, value);
          case "--idle-exit-ms" -> idleExitMs = positive(flag, value);
          case "--schema-dir" -> schemaDir = Paths.get(value);
          case "--property" -> {
            int eq = value.indexOf('=');
            if (eq <= 0) {
              throw new IllegalArgumentException("--property needs KEY=VALUE, got " + value);
            }
            properties.put(value.substring(0, eq), value.substring(eq + 1));
          }
          case "--schema-registry-url" -> registryUrl = httpUrl(flag, value);
          case "--schema-registry-user" -> registryUser = value;
          case "--schema-registry-password" -> registryPassword = value;
          case "--decode-file" -> decodeFiles.add(Paths.get(value));
          default -> throw new IllegalArgumentException("unknown option " + flag);
        }
      }
      if (registryUrl == null) {
        if (registryUser != null || registryPassword != null) {
          throw new IllegalArgumentException(
              "--schema-registry-user/--schema-registry-password need --schema-registry-url");
        }
      } else {
        if (registryUser == null) {
          registryUser = blankToNull(env.get("SCHEMA_REGISTRY_USER"));
        }
        if (registryPassword == null) {
          registryPassword = blankToNull(env.get("SCHEMA_REGISTRY_PASSWORD"));
        }
        if (registryUser == null && registryPassword != null) {
          throw new IllegalArgumentException(
              "a schema registry password needs a user (--schema-registry-user or"
                  + " SCHEMA_REGISTRY_USER)");
        }
      }
      return new Options(
          bootstrap,
          topic,
          group,
          maxRecords,
          idleExitMs,
          schemaDir,
          properties,
          registryUrl,
          registryUser,
          registryPassword,
          List.copyOf(decodeFiles));
    }

    private static String httpUrl(String flag, String value) {
      try {
        URI uri = new URI(value);
        if (uri.getRawUserInfo() != null) {
          // Not echoed: it would print the password.
          throw new IllegalArgumentException(
              flag + " must not carry credentials: use --schema-registry-user and"
                  + " SCHEMA_REGISTRY_PASSWORD (or --schema-registry-password)");
        }
        if (("http".equals(uri.getScheme()) || "https".equals(uri.getScheme()))
            && uri.getHost() != null
            && uri.getRawQuery() == null
            && uri.getRawFragment() == null) {
          return value;
        }
      } catch (URISyntaxException e) {
        // reported below
      }
      throw new IllegalArgumentException(
          flag + " needs an http(s) URL such as http://127.0.0.1:18081/apis/ccompat/v7, got "
              + value);
    }

    private static String blankToNull(String value) {
      return value == null || value.isEmpty() ? null : value;
    }

    /** Not the record's own toString: that would print the password. */
    @Override
    public String toString() {
      return "Options[topic=" + topic + ", groupId=" + groupId + ", registry=" + schemaRegistryUrl
          + "]";
    }

    private static long positive(String flag, String value) {
      try {
        long n = Long.parseLong(value);
        if (n > 0) {
          return n;
        }
      } catch (NumberFormatException e) {
        // reported below
      }
      throw new IllegalArgumentException(flag + " needs a positive number, got " + value);
    }
  }

  private Subscriber() {}

  public static void main(String[] args) throws Exception {
    limitAvroAllocations();
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("subscriber: " + e.getMessage());
      System.err.print(USAGE);
      System.exit(2);
      return;
    }
    List<Schema> writers =
        options.schemaDir() == null ? bundledSchemas() : schemasIn(options.schemaDir());
    SchemaRegistry registry =
        options.schemaRegistryUrl() == null
            ? null
            : new SchemaRegistry(
                options.schemaRegistryUrl(),
                options.schemaRegistryUser(),
                options.schemaRegistryPassword());
    ValueDecoder decoder = new ValueDecoder(decoderFor(writers), writers.get(0), registry);
    String source =
        options.decodeFiles().isEmpty()
            ? "topic " + options.topic() + ", group " + options.groupId()
            : options.decodeFiles().size() + " file(s), no Kafka";
    System.err.printf(
        "subscriber: %s, reader schema fingerprint %s (+%d older), schema registry %s%n",
        source,
        fingerprintHex(writers.get(0)),
        writers.size() - 1,
        registry == null
            ? "none"
            : registry.url() + (options.schemaRegistryUser() == null ? "" : " (basic auth)"));
    Counts counts =
        options.decodeFiles().isEmpty()
            ? run(options, decoder)
            : decodeFiles(options.decodeFiles(), decoder);
    System.err.printf(
        "subscriber: done: %d records, %d decoded, %d undecodable%n",
        counts.records, counts.decoded, counts.undecodable);
  }

  static final class Counts {
    long records;
    long decoded;
    long undecodable;
  }

  static Counts run(Options options, ValueDecoder decoder) {
    PrintStream out = stdout();
    Counts counts = new Counts();
    AtomicBoolean running = new AtomicBoolean(true);
    Thread mainThread = Thread.currentThread();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerConfig(options))) {
      // Ctrl-C / SIGTERM: wake the poll, let the loop commit what it printed and close.
      Thread hook =
          new Thread(
              () -> {
                if (running.getAndSet(false)) {
                  consumer.wakeup();
                  try {
                    mainThread.join(10_000);
                  } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                  }
                }
              });
      Runtime.getRuntime().addShutdownHook(hook);
      consumer.subscribe(List.of(options.topic()));
      long lastRecord = System.nanoTime();
      long pollMs = options.idleExitMs() > 0 ? Math.min(200, options.idleExitMs()) : 200;
      try {
        while (running.get()) {
          ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(pollMs));
          if (records.isEmpty()) {
            long idleMs = (System.nanoTime() - lastRecord) / 1_000_000;
            if (options.idleExitMs() > 0 && idleMs >= options.idleExitMs()) {
              System.err.printf("subscriber: nothing new for %d ms, stopping%n", idleMs);
              break;
            }
            continue;
          }
          lastRecord = System.nanoTime();
          Map<TopicPartition, OffsetAndMetadata> done = new HashMap<>();
          for (ConsumerRecord<byte[], byte[]> record : records) {
            handle(record, decoder, out, counts);
            done.put(
                new TopicPartition(record.topic(), record.partition()),
                new OffsetAndMetadata(record.offset() + 1));
            if (options.maxRecords() > 0 && counts.records >= options.maxRecords()) {
              running.set(false);
              break;
            }
          }
          out.flush();
          commit(consumer, done);
        }
      } catch (WakeupException e) {
        // shutting down
      } finally {
        out.flush();
        if (running.getAndSet(false)) {
          Runtime.getRuntime().removeShutdownHook(hook);
        }
      }
    }
    return counts;
  }

  /**
   * The --decode-file debug mode: each file holds one record value (either framing), decoded and
   * printed as if it came from partition -1 at offset = its position in the list.
   */
  static Counts decodeFiles(List<Path> files, ValueDecoder decoder) throws IOException {
    PrintStream out = stdout();
    Counts counts = new Counts();
    for (int i = 0; i < files.size(); i++) {
      byte[] value = Files.readAllBytes(files.get(i));
      handle("file " + files.get(i), -1, i, null, value, decoder, out, counts);
    }
    out.flush();
    return counts;
  }

  /**
   * A corrupt length prefix must not make Avro allocate gigabytes before it finds the bytes
   * missing: no string on the topic is longer than a Kafka record (1 MiB by default). Set before
   * Avro reads these properties (once, on first use); a -D on the command line wins.
   */
  static void limitAvroAllocations() {
    for (String property :
        List.of(
            "org.apache.avro.limits.string.maxLength", "org.apache.avro.limits.bytes.maxLength")) {
      if (System.getProperty(property) == null) {
        System.setProperty(property, String.valueOf(MAX_VALUE_BYTES));
      }
    }
  }

  static Properties consumerConfig(Options options) {
    Properties config = new Properties();
    config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, options.bootstrapServers());
    config.put(ConsumerConfig.GROUP_ID_CONFIG, options.groupId());
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, "customer-ids-java-subscriber");
    config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    config.putAll(options.properties());
    // Not to be overridden: only committed transactions, raw bytes, commits after printing.
    config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    String bytes = ByteArrayDeserializer.class.getName();
    config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, bytes);
    config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, bytes);
    return config;
  }

  private static void commit(
      KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, OffsetAndMetadata> done) {
    try {
      consumer.commitSync(done);
    } catch (CommitFailedException | RebalanceInProgressException e) {
      // The partitions moved to another member, which will read these records again: a
      // subscriber de-duplicates on event_id anyway (the same input always gives the same one).
      System.err.println(
          "subscriber: offsets not committed (" + e.getClass().getSimpleName() + ")");
    }
  }

  static void handle(
      ConsumerRecord<byte[], byte[]> record, ValueDecoder decoder, PrintStream out, Counts counts) {
    handle(
        record.topic() + "-" + record.partition(),
        record.partition(),
        record.offset(),
        record.key(),
        record.value(),
        decoder,
        out,
        counts);
  }

  /** Prints one value as a JSON line, or reports it on stderr as undecodable; counts it. */
  static void handle(
      String where,
      int partition,
      long offset,
      byte[] key,
      byte[] bytes,
      ValueDecoder decoder,
      PrintStream out,
      Counts counts) {
    counts.records++;
    Decoded decoded;
    try {
      decoded = decoder.decode(bytes);
    } catch (UndecodableException e) {
      counts.undecodable++;
      System.err.printf(
          "subscriber: undecodable record at %s offset %d: %s%n", where, offset, e.getMessage());
      return;
    }
    counts.decoded++;
    GenericRecord value = decoded.value();
    StringBuilder line = new StringBuilder(350);
    line.append("{\"partition\":").append(partition);
    line.append(",\"offset\":").append(offset);
    line.append(",\"key\":");
    Json.append(line, key == null ? null : new String(key, StandardCharsets.UTF_8));
    line.append(",\"framing\":");
    Json.append(line, decoded.framing().label);
    for (Schema.Field field : value.getSchema().getFields()) {
      line.append(',');
      Json.append(line, field.name());
      line.append(':');
      Json.append(line, value.get(field.pos()));
    }
    line.append('}');
    out.print(line);
    out.print('\n');
  }

  static final class UndecodableException extends Exception {
    private static final long serialVersionUID = 1L;

    UndecodableException(String message) {
      super(message);
    }
  }

  /** How a value was framed; the "framing" field of the JSON line. */
  enum Framing {
    SINGLE_OBJECT("single-object"),
    CONFLUENT("confluent");

    final String label;

    Framing(String label) {
      this.label = label;
    }
  }

  record Decoded(GenericRecord value, Framing framing) {}

  /**
   * Decodes a value in either framing, by its first byte, into the current schema: 0xC3 is Avro
   * single-object encoding, 0x00 the Confluent wire format (writer schema from the registry).
   * Not thread-safe: the subscriber decodes on one thread.
   */
  static final class ValueDecoder {
    static final byte SINGLE_OBJECT_MAGIC = (byte) 0xC3;
    static final byte CONFLUENT_MAGIC = 0x00;
    static final int CONFLUENT_HEADER = 5; // magic byte + 4-byte schema id

    private final BinaryMessageDecoder<GenericRecord> singleObject;
    private final Schema reader;
    private final SchemaRegistry registry; // null: no --schema-registry-url
    private final Map<Integer, GenericDatumReader<GenericRecord>> confluentReaders =
        new HashMap<>();
    // Ids whose schema is in the registry but cannot be read as the current one; the schema
    // under an id never changes, so this is final for the run.
    private final Map<Integer, String> unresolvable = new HashMap<>();
    private BinaryDecoder reuse;

    ValueDecoder(
        BinaryMessageDecoder<GenericRecord> singleObject, Schema reader, SchemaRegistry registry) {
      this.singleObject = singleObject;
      this.reader = reader;
      this.registry = registry;
    }

    /** The record in a value, or UndecodableException saying what is wrong with the bytes. */
    Decoded decode(byte[] value) throws UndecodableException {
      if (value == null || value.length == 0) {
        throw new UndecodableException("empty value");
      }
      if (value[0] == CONFLUENT_MAGIC) {
        return new Decoded(confluent(value), Framing.CONFLUENT);
      }
      if (value[0] == SINGLE_OBJECT_MAGIC) {
        return new Decoded(singleObject(value), Framing.SINGLE_OBJECT);
      }
      throw new UndecodableException(
          "neither Avro single-object encoded (C3 01) nor Confluent-framed (00), starts with "
              + HexFormat.of().formatHex(value, 0, Math.min(value.length, 4)));
    }

    private GenericRecord singleObject(byte[] value) throws UndecodableException {
      try {
        return singleObject.decode(value);
      } catch (BadHeaderException e) {
        throw new UndecodableException("not Avro single-object encoded: " + e.getMessage());
      } catch (MissingSchemaException e) {
        String fingerprint =
            value.length >= 10 ? HexFormat.of().formatHex(value, 2, 10) : "(truncated)";
        throw new UndecodableException("unknown writer schema, fingerprint " + fingerprint);
      } catch (IOException | RuntimeException e) {
        // Corrupt bodies surface as EOF, AvroRuntimeException, or an index/size exception.
        throw new UndecodableException(
            "corrupt Avro body: " + e.getClass().getSimpleName() + ": " + e.getMessage());
      }
    }

    private GenericRecord confluent(byte[] value) throws UndecodableException {
      if (value.length < CONFLUENT_HEADER) {
        throw new UndecodableException(
            "Confluent framing cut short: "
                + value.length
                + " bytes, the header alone is "
                + CONFLUENT_HEADER);
      }
      int id =
          (value[1] & 0xff) << 24 | (value[2] & 0xff) << 16 | (value[3] & 0xff) << 8
              | (value[4] & 0xff);
      if (registry == null) {
        throw new UndecodableException(
            "Confluent-framed (magic byte 0, schema id "
                + id
                + ") but no --schema-registry-url to look the schema up");
      }
      GenericDatumReader<GenericRecord> datumReader = readerFor(id);
      reuse =
          DecoderFactory.get()
              .binaryDecoder(value, CONFLUENT_HEADER, value.length - CONFLUENT_HEADER, reuse);
      GenericRecord record;
      try {
        record = datumReader.read(null, reuse);
        if (!reuse.isEnd()) {
          throw new UndecodableException(
              "bytes left over after the record (Confluent, schema id " + id + ")");
        }
      } catch (IOException | RuntimeException e) {
        throw new UndecodableException(
            "corrupt Avro body (Confluent, schema id "
                + id
                + "): "
                + e.getClass().getSimpleName()
                + ": "
                + e.getMessage());
      }
      return record;
    }

    /** A reader from the writer schema under {@code id} to the current schema, made once. */
    private GenericDatumReader<GenericRecord> readerFor(int id) throws UndecodableException {
      GenericDatumReader<GenericRecord> datumReader = confluentReaders.get(id);
      if (datumReader != null) {
        return datumReader;
      }
      String refused = unresolvable.get(id);
      if (refused != null) {
        throw new UndecodableException(refused);
      }
      Schema writer;
      try {
        writer = registry.schema(id);
      } catch (SchemaRegistry.LookupException e) {
        throw new UndecodableException(e.getMessage());
      }
      SchemaCompatibility.SchemaPairCompatibility compatibility =
          SchemaCompatibility.checkReaderWriterCompatibility(reader, writer);
      if (compatibility.getType() != SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE) {
        StringBuilder why = new StringBuilder();
        why.append("schema id ").append(id).append(" (").append(writer.getFullName());
        why.append(") cannot be read as ").append(reader.getFullName());
        for (SchemaCompatibility.Incompatibility problem :
            compatibility.getResult().getIncompatibilities()) {
          why.append("; ").append(problem.getType()).append(" at ").append(problem.getLocation());
          why.append(": ").append(problem.getMessage());
        }
        unresolvable.put(id, why.toString());
        throw new UndecodableException(why.toString());
      }
      datumReader = new GenericDatumReader<>(writer, reader, GenericData.get());
      confluentReaders.put(id, datumReader);
      return datumReader;
    }
  }

  /**
   * Reads records written with the current schema or any older one, all into the current one
   * (Avro schema resolution); a record whose fingerprint is none of them is refused.
   */
  static BinaryMessageDecoder<GenericRecord> decoderFor(List<Schema> schemas) {
    BinaryMessageDecoder<GenericRecord> decoder =
        new BinaryMessageDecoder<>(GenericData.get(), schemas.get(0));
    for (Schema older : schemas.subList(1, schemas.size())) {
      decoder.addSchema(older);
    }
    return decoder;
  }

  /** The current schema first, then the older writer schemas of schemas/history/. */
  static List<Schema> schemasIn(Path dir) throws IOException {
    Path current = dir.resolve(SCHEMA_NAME + ".avsc");
    if (!Files.isRegularFile(current)) {
      throw new IOException("no " + current + ": --schema-dir must be the repository's schemas/");
    }
    List<Schema> schemas = new ArrayList<>();
    schemas.add(parse(current));
    Path history = dir.resolve("history");
    if (Files.isDirectory(history)) {
      List<Path> older = new ArrayList<>();
      String glob = SCHEMA_NAME + ".*.avsc";
      try (DirectoryStream<Path> files = Files.newDirectoryStream(history, glob)) {
        files.forEach(older::add);
      }
      older.sort(null);
      for (Path path : older) {
        schemas.add(parse(path));
      }
    }
    return schemas;
  }

  /** The copy of schemas/ that the build put into the jar (or target/classes). */
  static List<Schema> bundledSchemas() throws IOException {
    URL url = Subscriber.class.getResource(BUNDLED_SCHEMA);
    if (url == null) {
      throw new IOException(BUNDLED_SCHEMA + " is not in the jar: build it with mvn package");
    }
    try {
      URI uri = url.toURI();
      if ("jar".equals(uri.getScheme())) {
        try {
          FileSystems.newFileSystem(uri, Map.of());
        } catch (FileSystemAlreadyExistsException e) {
          // opened before
        }
      }
      return schemasIn(Paths.get(uri).getParent());
    } catch (URISyntaxException e) {
      throw new IOException(e);
    }
  }

  private static Schema parse(Path path) throws IOException {
    // A parser per file: one parser refuses to see the same record name twice.
    return new Schema.Parser().parse(Files.readString(path, StandardCharsets.UTF_8));
  }

  /** stdout as UTF-8 whatever the platform's default, flushed by the caller. */
  static PrintStream stdout() {
    return new PrintStream(
        new BufferedOutputStream(new FileOutputStream(FileDescriptor.out)),
        false,
        StandardCharsets.UTF_8);
  }

  static String fingerprintHex(Schema schema) {
    long fp = SchemaNormalization.parsingFingerprint64(schema);
    byte[] littleEndian = new byte[8];
    for (int i = 0; i < 8; i++) {
      littleEndian[i] = (byte) (fp >>> (8 * i));
    }
    return HexFormat.of().formatHex(littleEndian);
  }

  /** Just enough JSON for Avro's generic values; no library needed. */
  static final class Json {
    private Json() {}

    static void append(StringBuilder out, Object value) {
      if (value == null) {
        out.append("null");
      } else if (value instanceof CharSequence text) {
        string(out, text);
      } else if (value instanceof Integer || value instanceof Long || value instanceof Boolean) {
        out.append(value);
      } else if (value instanceof Float || value instanceof Double) {
        double d = ((Number) value).doubleValue();
        if (Double.isFinite(d)) {
          out.append(value);
        } else {
          string(out, value.toString());
        }
      } else if (value instanceof GenericRecord record) {
        out.append('{');
        boolean first = true;
        for (Schema.Field field : record.getSchema().getFields()) {
          if (!first) {
            out.append(',');
          }
          first = false;
          string(out, field.name());
          out.append(':');
          append(out, record.get(field.pos()));
        }
        out.append('}');
      } else if (value instanceof Map<?, ?> map) {
        out.append('{');
        boolean first = true;
        for (Map.Entry<?, ?> entry : map.entrySet()) {
          if (!first) {
            out.append(',');
          }
          first = false;
          string(out, String.valueOf(entry.getKey()));
          out.append(':');
          append(out, entry.getValue());
        }
        out.append('}');
      } else if (value instanceof Collection<?> items) {
        out.append('[');
        boolean first = true;
        for (Object item : items) {
          if (!first) {
            out.append(',');
          }
          first = false;
          append(out, item);
        }
        out.append(']');
      } else {
        // enums, fixed, bytes: Avro's own rendering, as a string
        string(out, GenericData.get().toString(value));
      }
    }

    static void string(StringBuilder out, CharSequence text) {
      out.append('"');
      for (int i = 0; i < text.length(); i++) {
        char c = text.charAt(i);
        switch (c) {
          case '"' -> out.append("\\\"");
          case '\\' -> out.append("\\\\");
          case '\n' -> out.append("\\n");
          case '\r' -> out.append("\\r");
          case '\t' -> out.append("\\t");
          default -> {
            if (c < 0x20 || c == 0x2028 || c == 0x2029) {
              out.append(String.format("\\u%04x", (int) c));
            } else {
              out.append(c);
            }
          }
        }
      }
      out.append('"');
    }
  }
}
