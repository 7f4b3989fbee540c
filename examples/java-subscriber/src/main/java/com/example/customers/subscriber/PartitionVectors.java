package com.example.customers.subscriber;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

/**
 * Where the Java client puts a keyed record: reads keys on stdin (one per line, UTF-8) and
 * prints {@code key<TAB>partition} for the partition count given as the only argument.
 *
 * <p>With no partitioner configured, KafkaProducer sends a record that has a key to {@code
 * BuiltInPartitioner.partitionForKey(keyBytes, partitionCount)}, which is {@code
 * Utils.toPositive(Utils.murmur2(keyBytes)) % partitionCount}; both are computed here and must
 * agree. librdkafka's {@code partitioner=murmur2_random} is meant to place keyed records the
 * same way; these vectors let a test check that it does.
 */
public final class PartitionVectors {
  private PartitionVectors() {}

  public static void main(String[] args) throws IOException {
    int partitions;
    try {
      partitions = args.length == 1 ? Integer.parseInt(args[0]) : 0;
    } catch (NumberFormatException e) {
      partitions = 0;
    }
    if (partitions <= 0) {
      System.err.println(
          "usage: java -cp customer-ids-java-subscriber.jar "
              + PartitionVectors.class.getName()
              + " PARTITION_COUNT < keys.txt");
      System.exit(2);
    }
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = Subscriber.stdout();
    String key;
    while ((key = in.readLine()) != null) {
      out.print(key);
      out.print('\t');
      out.print(partition(key.getBytes(StandardCharsets.UTF_8), partitions));
      out.print('\n');
    }
    out.flush();
  }

  static int partition(byte[] key, int partitions) {
    int client = BuiltInPartitioner.partitionForKey(key, partitions);
    int formula = Utils.toPositive(Utils.murmur2(key)) % partitions;
    if (client != formula) {
      throw new IllegalStateException(
          "kafka-clients places a key on " + client + " but murmur2 says " + formula);
    }
    return client;
  }
}
